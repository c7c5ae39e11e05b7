"""Atomic budget reservations in Redis (DESIGN §4 step 3, playbook §11).

Before a call, one Lua script checks every scope that applies (workspace tokens per day, user
requests per day, later agent, run and credit balance) and reserves the worst case in all of
them — or in none. Concurrent calls therefore can't all pass on the same below-limit value, the
way read-then-write checks let them. After the call, `settle` releases the reservation and adds
what was really used; it is idempotent. Reservations carry a TTL; `janitor` releases those whose
caller died, and a late settle still counts the usage once.

Data: each scope is a hash {used, reserved} under its key; a reservation is a string key holding
{counter key: amount} JSON, indexed by expiry in one sorted set for the janitor.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from .errors import BudgetExceededError, Denial

EXPIRED = "expired"  # a reservation the janitor released; a late settle still counts usage

_RESERVE = """
local n = tonumber(ARGV[1])
for i = 1, n do
  local base = 4 + (i - 1) * 3
  local limit = tonumber(ARGV[base + 1])
  local amount = tonumber(ARGV[base + 2])
  local used = tonumber(redis.call('HGET', KEYS[i], 'used') or '0')
  local reserved = tonumber(redis.call('HGET', KEYS[i], 'reserved') or '0')
  if used + reserved + amount > limit then
    return {i, used, reserved}
  end
end
for i = 1, n do
  local base = 4 + (i - 1) * 3
  redis.call('HINCRBY', KEYS[i], 'reserved', tonumber(ARGV[base + 2]))
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[base + 3]))
end
redis.call('SET', KEYS[n + 1], ARGV[4], 'EX', tonumber(ARGV[3]))
redis.call('ZADD', KEYS[n + 2], tonumber(ARGV[2]), KEYS[n + 1])
return {0}
"""

_SETTLE = """
local n = tonumber(ARGV[1])
local payload = redis.call('GET', KEYS[n + 1])
if not payload then
  return 0
end
if payload ~= 'expired' then
  local amounts = cjson.decode(payload)
  for i = 1, n do
    local amount = amounts[KEYS[i]]
    if amount then
      redis.call('HINCRBY', KEYS[i], 'reserved', -tonumber(amount))
    end
  end
end
for i = 1, n do
  local actual = tonumber(ARGV[1 + i])
  if actual > 0 then
    redis.call('HINCRBY', KEYS[i], 'used', actual)
  end
end
redis.call('DEL', KEYS[n + 1])
redis.call('ZREM', KEYS[n + 2], KEYS[n + 1])
return 1
"""

_JANITOR = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, key in ipairs(due) do
  local payload = redis.call('GET', key)
  if payload and payload ~= 'expired' then
    for counter, amount in pairs(cjson.decode(payload)) do
      redis.call('HINCRBY', counter, 'reserved', -tonumber(amount))
    end
    redis.call('SET', key, 'expired', 'EX', tonumber(ARGV[3]))
  end
  redis.call('ZREM', KEYS[1], key)
end
return #due
"""


@dataclass(frozen=True, slots=True)
class Scope:
    """One limit a call counts against. `amount` is the worst case this call may use."""

    name: str  # e.g. "workspace_day_tokens"
    key: str  # Redis key of the counter; starts with the schema name
    limit: int
    amount: int
    kind: str = "budget"  # budget → 402, rate → 429
    unit: str = "tokens"
    ttl: int = 2 * 86400  # how long the counter lives (a daily counter outlives its day)
    resets_at: str | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    key: str
    scopes: tuple[Scope, ...]


@dataclass(frozen=True, slots=True)
class ScopeUsage:
    name: str
    used: int
    reserved: int
    limit: int
    unit: str
    kind: str
    resets_at: str | None

    @property
    def fraction(self) -> float:
        return (self.used + self.reserved) / self.limit if self.limit else 1.0


class BudgetStore:
    """Reserve → settle against Redis, atomically across scopes."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "llm",
        reservation_ttl: int = 900,
    ):
        self.client = client
        self.prefix = prefix
        self.reservation_ttl = reservation_ttl
        self.expiry_key = f"{prefix}:reservations:expiry"
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._janitor = client.register_script(_JANITOR)

    async def reserve(self, scopes: Sequence[Scope], *, ttl: int | None = None) -> Reservation:
        """Reserve every scope's amount, or raise BudgetExceededError naming the first refusal."""
        reservation_id = uuid.uuid4().hex
        key = f"{self.prefix}:reservation:{reservation_id}"
        ttl = ttl or self.reservation_ttl
        payload = json.dumps({s.key: s.amount for s in scopes})
        args: list[str | int] = [len(scopes), int(time.time()) + ttl, ttl + 86400, payload]
        for scope in scopes:
            args += [scope.limit, scope.amount, scope.ttl]
        result = await self._reserve(
            keys=[*(s.key for s in scopes), key, self.expiry_key], args=args
        )
        refused = int(result[0])
        if refused:
            scope = scopes[refused - 1]
            raise BudgetExceededError(
                Denial(
                    scope=scope.name,
                    kind=scope.kind,
                    limit=scope.limit,
                    used=int(result[1]),
                    reserved=int(result[2]),
                    requested=scope.amount,
                    unit=scope.unit,
                    resets_at=scope.resets_at,
                )
            )
        return Reservation(id=reservation_id, key=key, scopes=tuple(scopes))

    async def settle(self, reservation: Reservation, actual: Mapping[str, int]) -> bool:
        """Release the reservation and add `actual` usage per scope name. Idempotent: returns
        False (and changes nothing) when the reservation was already settled."""
        scopes = reservation.scopes
        args = [len(scopes), *(max(0, int(actual.get(s.name, 0))) for s in scopes)]
        done = await self._settle(
            keys=[*(s.key for s in scopes), reservation.key, self.expiry_key], args=args
        )
        return bool(done)

    async def release(self, reservation: Reservation) -> bool:
        """Give the whole reservation back (the call made no billable use)."""
        return await self.settle(reservation, {})

    async def janitor(self, *, now: float | None = None, batch: int = 500) -> int:
        """Release reservations past their TTL (their caller died); return how many."""
        released = 0
        while True:
            count = int(
                await self._janitor(
                    keys=[self.expiry_key],
                    args=[now if now is not None else time.time(), batch, 86400],
                )
            )
            released += count
            if count < batch:
                return released

    async def usage(self, scopes: Sequence[Scope]) -> list[ScopeUsage]:
        """Used / reserved / limit per scope, for banners and the budget CLI."""
        async with self.client.pipeline(transaction=False) as pipe:
            for scope in scopes:
                pipe.hmget(scope.key, ["used", "reserved"])
            rows = await pipe.execute()
        return [
            ScopeUsage(
                name=s.name,
                used=int(row[0] or 0),
                reserved=int(row[1] or 0),
                limit=s.limit,
                unit=s.unit,
                kind=s.kind,
                resets_at=s.resets_at,
            )
            for s, row in zip(scopes, rows, strict=True)
        ]

    async def open_reservations(self) -> int:
        """How many reservations are outstanding (tests and the budget CLI)."""
        return int(await self.client.zcard(self.expiry_key))
