"""Atomic budget reservations in Redis (docs/architecture.md, "The gateway").

Before a call, one Lua script checks every scope that applies (workspace tokens per day, user
requests per day, the credit balance, later agent and run) and reserves the worst case in all of
them — or in none. Concurrent calls therefore can't all pass on the same below-limit value, the
way read-then-write checks let them. After the call, `settle` releases the reservation and adds
what was really used; it is idempotent. Reservations carry a TTL; `janitor` releases those whose
caller died, and a late settle still counts the usage once.

Data: each counter scope is a hash {used, reserved} under its key; a reservation is a string key
holding {counter key: amount} JSON, indexed by expiry in one sorted set for the janitor.

A *balance* scope (the credit balance: `Scope.seq` set) has no fixed limit. Its hash holds
{limit, seq, reserved, pending, p:<reservation id>…}: `limit` is the ledger balance as of ledger
entry `seq`; `pending` is what settled calls cost that the ledger has not debited yet, one
`p:<id>` field per call. A reservation passes when pending + reserved + amount <= limit. The
caller's own read of the ledger (limit, seq) replaces the stored one only when it is newer, so
top-ups and grants count at the next call. Once a debit commits, the ledger side moves the
call's amount out of pending through `CreditHash.posted` (credit_hash.py), at most once per call: a late or repeated acknowledgement can make a cost count twice for a moment, never zero
times. The hash never expires while anything is pending.
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
local found = {}
for i = 1, n do
  local base = 4 + (i - 1) * 4
  local limit = tonumber(ARGV[base + 1])
  local amount = tonumber(ARGV[base + 2])
  local seq = tonumber(ARGV[base + 4])
  local used, reserved
  if seq >= 0 then
    local stored = redis.call('HMGET', KEYS[i], 'limit', 'seq', 'pending', 'reserved')
    if stored[1] and tonumber(stored[2]) >= seq then
      limit = tonumber(stored[1])
    else
      redis.call('HSET', KEYS[i], 'limit', limit, 'seq', seq)
    end
    used = tonumber(stored[3] or '0')
    reserved = tonumber(stored[4] or '0')
  else
    used = tonumber(redis.call('HGET', KEYS[i], 'used') or '0')
    reserved = tonumber(redis.call('HGET', KEYS[i], 'reserved') or '0')
  end
  if used + reserved + amount > limit then
    return {i, used, reserved, limit}
  end
  found[i] = used
end
for i = 1, n do
  local base = 4 + (i - 1) * 4
  redis.call('HINCRBY', KEYS[i], 'reserved', tonumber(ARGV[base + 2]))
  if tonumber(ARGV[base + 4]) >= 0 and found[i] > 0 then
    redis.call('PERSIST', KEYS[i])
  else
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[base + 3]))
  end
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
    local amount = tonumber(amounts[KEYS[i]] or '0')
    if amount ~= 0 then  -- Lua's -0 reaches Redis as "-0", which HINCRBY refuses
      redis.call('HINCRBY', KEYS[i], 'reserved', -amount)
    end
  end
end
for i = 1, n do
  local actual = tonumber(ARGV[1 + i])
  if actual > 0 then
    if ARGV[1 + n + i] == '1' then
      redis.call('HINCRBY', KEYS[i], 'pending', actual)
      redis.call('HSET', KEYS[i], 'p:' .. ARGV[2 + 2 * n], actual)
      redis.call('PERSIST', KEYS[i])
    else
      redis.call('HINCRBY', KEYS[i], 'used', actual)
    end
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
      if tonumber(amount) ~= 0 then
        redis.call('HINCRBY', counter, 'reserved', -tonumber(amount))
      end
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
    # A balance scope: `limit` is the ledger balance as of ledger entry `seq` (module docstring).
    seq: int | None = None


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

    async def reserve(
        self, scopes: Sequence[Scope], *, ttl: int | None = None, reservation_id: str | None = None
    ) -> Reservation:
        """Reserve every scope's amount, or raise BudgetExceededError naming the first refusal.
        `reservation_id` (unique; default a fresh uuid) names what a balance scope's pending
        amount is kept under until its debit is posted: the gateway passes the call id."""
        reservation_id = reservation_id or uuid.uuid4().hex
        key = f"{self.prefix}:reservation:{reservation_id}"
        ttl = ttl or self.reservation_ttl
        payload = json.dumps({s.key: s.amount for s in scopes})
        args: list[str | int] = [len(scopes), int(time.time()) + ttl, ttl + 86400, payload]
        for scope in scopes:
            seq = -1 if scope.seq is None else scope.seq
            args += [scope.limit, scope.amount, scope.ttl, seq]
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
                    limit=int(result[3]),
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
        args: list[str | int] = [
            len(scopes),
            *(max(0, int(actual.get(s.name, 0))) for s in scopes),
            *(0 if s.seq is None else 1 for s in scopes),
            reservation.id,
        ]
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
        """Used / reserved / limit per scope, for banners and the budget CLI. A balance scope's
        `used` is its pending amount, and its limit the newer of the stored and the given one."""
        async with self.client.pipeline(transaction=False) as pipe:
            for scope in scopes:
                if scope.seq is None:
                    pipe.hmget(scope.key, ["used", "reserved"])
                else:
                    pipe.hmget(scope.key, ["pending", "reserved", "limit", "seq"])
            rows = await pipe.execute()
        return [
            ScopeUsage(
                name=s.name,
                used=int(row[0] or 0),
                reserved=int(row[1] or 0),
                limit=_limit(s, row),
                unit=s.unit,
                kind=s.kind,
                resets_at=s.resets_at,
            )
            for s, row in zip(scopes, rows, strict=True)
        ]

    async def open_reservations(self) -> int:
        """How many reservations are outstanding (tests and the budget CLI)."""
        return int(await self.client.zcard(self.expiry_key))


def _limit(scope: Scope, row: Sequence[bytes | None]) -> int:
    if scope.seq is None or row[2] is None or int(row[3] or -1) < scope.seq:
        return scope.limit
    return int(row[2])
