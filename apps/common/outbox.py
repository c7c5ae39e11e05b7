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

The database outbox (`db_outbox_put` / `db_outbox_drain`) is where a write goes when Redis
itself refuses it (the gateway's after-call writes: a dropped or stalled connection after the
provider answered): a row per write, performed by its drain once Redis answers, then deleted.
The drain holds the rows it works on locked (`SKIP LOCKED`), so two drains never take one row;
a drain killed after the write but before the delete performs it again, so writes kept here
must be idempotent too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
import structlog
from django.db import transaction

from .models import OutboxEntry

log = structlog.get_logger(__name__)

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


def db_outbox_put(*, kind: str, payload: dict[str, Any]) -> None:
    """Keep one write of `kind` (its JSON payload) for its drain."""
    OutboxEntry.objects.create(kind=kind, payload=payload)


def db_outbox_drain(
    *, kind: str, perform: Callable[[dict[str, Any]], None], batch: int = 100
) -> int:
    """Perform the kept writes of `kind`, oldest first, deleting each once performed; return
    how many were. Stops at the first failure, leaving it and the rest for the next run (the
    service they need is likely still down); the error is logged, not raised."""
    done = 0
    while True:
        with transaction.atomic():
            entries = list(
                OutboxEntry.objects.select_for_update(skip_locked=True)
                .filter(kind=kind)
                .order_by("id")[:batch]
            )
            for entry in entries:
                try:
                    perform(entry.payload)
                except Exception as exc:
                    log.warning(
                        "db_outbox.write_failed", kind=kind, entry=entry.pk, error=repr(exc)
                    )
                    return done
                entry.delete()
                done += 1
        if len(entries) < batch:
            return done
