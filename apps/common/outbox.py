"""A leased outbox: a Redis list that producers push onto and one consumer drains at least once.

An item is never popped and forgotten. `claim` moves a batch into a processing sorted set
scored by its lease deadline; `ack` removes items once their effect is committed. A consumer
killed anywhere leaves its claimed items leased, and the next `claim` after the lease ends
takes them again — so what the consumer does with an item must be idempotent (the call log
skips known call ids; the ledger skips known idempotency keys). `release` hands items back at
once (a failure the consumer saw: the next run retries without waiting out the lease);
`dead_letter` parks items nobody can process, for a person to look at.

Items are compared by value in the processing set: two identical items are one. Every queue
here carries a unique id per item (a call id), so that never merges two items.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import redis

# Claim up to ARGV[3] items: first those whose lease ended (a consumer died holding them), then
# fresh ones from the list; every claimed item gets the lease deadline ARGV[2].
_CLAIM = """
local items = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local want = tonumber(ARGV[3]) - #items
if want > 0 then
  local fresh = redis.call('LPOP', KEYS[1], want)
  if fresh then
    for _, item in ipairs(fresh) do
      table.insert(items, item)
    end
  end
end
for _, item in ipairs(items) do
  redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), item)
end
return items
"""


class LeasedOutbox:
    """One queue: `key` (the list producers RPUSH onto), `key:processing` (claimed items by
    lease deadline) and `dead_letter_key`."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        *,
        dead_letter_key: str,
        lease_seconds: float = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.key = key
        self.processing_key = self.processing_key_for(key)
        self.dead_letter_key = dead_letter_key
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._claim = client.register_script(_CLAIM)

    @staticmethod
    def processing_key_for(key: str) -> str:
        return f"{key}:processing"

    def claim(self, batch: int) -> list[bytes]:
        """Up to `batch` items, expired leases first, each leased to the caller from now."""
        now = self.clock()
        items: list[bytes] = self._claim(
            keys=[self.key, self.processing_key], args=[now, now + self.lease_seconds, batch]
        )
        return items

    def ack(self, items: Sequence[bytes]) -> None:
        """Their effect is committed: they leave the outbox."""
        if items:
            self.client.zrem(self.processing_key, *items)

    def release(self, items: Sequence[bytes]) -> None:
        """Hand them back now: the next `claim` takes them first."""
        if items:
            self.client.zadd(self.processing_key, dict.fromkeys(items, 0))

    def dead_letter(self, items: Sequence[bytes], *, kept: Sequence[str | bytes] = ()) -> None:
        """Park `items` for a person (as `kept`, e.g. masked copies, when given) and ack them."""
        if not items:
            return
        with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(self.dead_letter_key, *(kept or items))
            pipe.zrem(self.processing_key, *items)
            pipe.execute()

    def pending(self) -> tuple[int, int]:
        """(queued, claimed) item counts."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(self.key)
            pipe.zcard(self.processing_key)
            queued, claimed = pipe.execute()
        return int(queued), int(claimed)
