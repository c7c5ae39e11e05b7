"""After-call writes that must not be lost: the budget settle, the credit debit and the call
record. The provider has answered (a streaming client already has the tokens), so a Redis that
drops or stalls now must neither lose the call's money or record nor fail the call.

Each write is tried; a dropped connection is retried once on a new one (the command may have
run before the drop: every write is idempotent — the settle script acts once per reservation, a
debit posts once per call id, the call log skips a known call id); a timeout is not retried (it
already waited). A write that still fails is kept in the fallback outbox (the database), from
which `replay` performs it once Redis answers again. So a connection killed at any after-call
stage still leaves exactly one call record and one debit.

A settle kept for later gives back the reservation and counts the daily budgets, but adds
nothing to the credit balance's pending amount: by the time it is replayed the debit may already
be posted, and pending added after that would never be taken out. The ledger debit is what
charges the call; until it is posted the credit hash shows that much more credit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..budget import BudgetStore, Reservation, Scope
from ..context import CallRecord, CallSink, DebitPort
from ..errors import CREDIT_BALANCE

log = logging.getLogger(__name__)

SETTLE, DEBIT, RECORD = "settle_budget", "debit_credits", "record_call"
RETRY_DELAY = 0.05  # seconds before the one retry on a new connection


@dataclass(frozen=True, slots=True)
class KeptWrite:
    """An after-call write Redis refused, as the fallback outbox keeps it."""

    stage: str  # SETTLE | DEBIT | RECORD
    record: CallRecord
    reservation: Reservation | None = None  # SETTLE: what to give back …
    actual: Mapping[str, int] = field(default_factory=dict)  # … and the usage to count

    def to_json(self) -> dict[str, Any]:
        reservation = self.reservation
        return {
            "stage": self.stage,
            "record": {f.name: getattr(self.record, f.name) for f in fields(self.record)},
            "reservation": (
                {
                    "id": reservation.id,
                    "key": reservation.key,
                    "scopes": [asdict(scope) for scope in reservation.scopes],
                }
                if reservation
                else None
            ),
            "actual": dict(self.actual),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeptWrite:
        record = dict(data["record"])
        record["attempts"] = tuple(record.get("attempts") or ())
        found = data.get("reservation")
        reservation = (
            Reservation(
                id=found["id"],
                key=found["key"],
                scopes=tuple(Scope(**scope) for scope in found["scopes"]),
            )
            if found
            else None
        )
        actual = {name: int(amount) for name, amount in (data.get("actual") or {}).items()}
        return cls(
            stage=str(data["stage"]),
            record=CallRecord(**record),
            reservation=reservation,
            actual=actual,
        )


class FallbackOutbox(Protocol):
    """Durable storage (the database) for after-call writes Redis refused."""

    async def keep(self, write: KeptWrite) -> None: ...


class NoFallback:
    """No outbox: a write Redis refuses raises (unit tests of the pipeline alone)."""

    async def keep(self, write: KeptWrite) -> None:
        raise RuntimeError(f"Redis refused the after-call write {write.stage} and no outbox is set")


class DurableWrites:
    """The after-call writes over the ports they go to, each made durable (module docstring)."""

    def __init__(
        self, *, budget: BudgetStore, debit: DebitPort, sink: CallSink, outbox: FallbackOutbox
    ):
        self.budget = budget
        self.debit = debit
        self.sink = sink
        self.outbox = outbox

    async def settle(
        self, reservation: Reservation, actual: Mapping[str, int], record: CallRecord
    ) -> None:
        kept = {**actual, CREDIT_BALANCE: 0} if CREDIT_BALANCE in actual else dict(actual)
        await self._durably(
            lambda: self.budget.settle(reservation, actual),
            KeptWrite(SETTLE, record, reservation, kept),
        )

    async def debit_credits(self, record: CallRecord) -> None:
        await self._durably(lambda: self.debit.debit(record), KeptWrite(DEBIT, record))

    async def record_call(self, record: CallRecord) -> None:
        await self._durably(lambda: self.sink.record(record), KeptWrite(RECORD, record))

    async def replay(self, write: KeptWrite) -> None:
        """Perform a kept write now (once). Raises RedisError while Redis still refuses."""
        if write.stage == SETTLE:
            assert write.reservation is not None
            await self.budget.settle(write.reservation, write.actual)
        elif write.stage == DEBIT:
            await self.debit.debit(write.record)
        elif write.stage == RECORD:
            await self.sink.record(write.record)
        else:
            raise ValueError(f"unknown after-call stage {write.stage!r}")

    async def _durably(self, write: Callable[[], Awaitable[object]], kept: KeptWrite) -> None:
        for attempt in (1, 2):
            try:
                await write()
                return
            except RedisTimeoutError as exc:
                error: RedisError = exc
                break
            except RedisError as exc:
                error = exc
                if attempt == 1:
                    await asyncio.sleep(RETRY_DELAY)
        log.warning(
            "after_call.kept_for_later stage=%s call_id=%s error=%s",
            kept.stage,
            kept.record.call_id,
            type(error).__name__,
        )
        await self.outbox.keep(kept)
