"""The debit queue: the gateway's debit port, the worker that posts the queued debits to the
ledger, and what a workspace's credit looks like with the calls not yet posted.

On the hot path, `LedgerDebit.debit` pushes one small JSON per charged call onto a Redis list.
It runs in the gateway's after-stage next to the budget settle (which moved the call's charge
from reserved to pending in the credit balance scope) and the call record; with the batching
client the three share one round trip, so a call still costs two. No database on the hot path.

Off it, `call_debits_post` (beat, every 2 s) posts each queued debit with `ledger_post`, key
`call:<call id>`, then acknowledges it. The queue is a leased outbox (apps/common/outbox.py):
an item is claimed with a lease and leaves only once its debit committed and the credit hash
took the call out of pending. A worker killed anywhere leaves the item to be claimed again when
the lease ends:
- killed before the debit committed → it is posted on the retry (no lost debit);
- killed after → `ledger_post` finds the key and writes nothing, and pending drops once (its
  `p:<call id>` field goes with the amount) — no double debit, pending reconciled.
Why not debit from the call-record flush: money must not wait on trace storage (a batch of
records the database refuses, masking, rollups), and each queue acknowledges its own effect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
import structlog
from django.conf import settings
from django.db import IntegrityError

from apps.common.outbox import LeasedOutbox
from apps.common.redis_clients import redis_sync_client
from apps.llm.services import CallRecord, CreditHash, credit_charge

from .ledger import Posting, balance_get, ledger_post
from .models import LedgerReason

log = structlog.get_logger(__name__)

# Platform-wide queues: they cross workspaces by design (every item names its workspace).
QUEUE_KEY = "all_workspaces:billing:call_debits"
PROCESSING_KEY = LeasedOutbox.processing_key_for(QUEUE_KEY)  # claimed debits, by lease deadline
DEAD_LETTER_KEY = "all_workspaces:billing:call_debits:unreadable"
LEASE_SECONDS = 60
BALANCE_TTL = 86400  # an idle credit hash expires once nothing is pending


class LedgerDebit:
    """The gateway's DebitPort: one RPUSH per call that costs the workspace credit."""

    def __init__(self, client: aioredis.Redis):
        self.client = client

    async def debit(self, record: CallRecord) -> None:
        charge = credit_charge(record, byok_fee=settings.BILLING_BYOK_FEE_MICROS)
        if charge > 0:
            await self.client.rpush(QUEUE_KEY, json.dumps(_item(record, charge)))


def _item(record: CallRecord, charge: int) -> dict[str, Any]:
    return {
        "call_id": record.call_id,
        "trace_id": record.trace_id,
        "workspace_id": record.workspace_id,
        "schema": record.schema,
        "feature": record.feature,
        "alias": record.alias,
        "provider": record.provider,
        "model": record.model,
        "byok": record.byok,
        "tokens": {
            "input": record.input_tokens,
            "output": record.output_tokens,
            "cache_read": record.cache_read_tokens,
            "cache_write": record.cache_write_tokens,
        },
        "cost_micros": record.cost_micros,
        "charge_micros": charge,
    }


@dataclass(frozen=True, slots=True)
class CallDebit:
    call_id: str
    workspace_id: int
    schema: str
    feature: str
    charge_micros: int
    metadata: dict[str, Any]

    @classmethod
    def decode(cls, raw: bytes) -> CallDebit:
        data = json.loads(raw)
        charge = data["charge_micros"]
        if not isinstance(charge, int) or isinstance(charge, bool) or charge <= 0:
            raise ValueError(f"charge_micros must be a positive int, not {charge!r}")
        return cls(
            call_id=str(data["call_id"]),
            workspace_id=int(data["workspace_id"]),
            schema=str(data["schema"]),
            feature=str(data["feature"]),
            charge_micros=charge,
            metadata={
                key: data[key]
                for key in (
                    "call_id",
                    "trace_id",
                    "alias",
                    "provider",
                    "model",
                    "tokens",
                    "cost_micros",
                    "byok",
                )
            },
        )


def _sync_client() -> redis.Redis:
    return redis_sync_client()


def _outbox(client: redis.Redis, lease: float = LEASE_SECONDS) -> LeasedOutbox:
    return LeasedOutbox(client, QUEUE_KEY, dead_letter_key=DEAD_LETTER_KEY, lease_seconds=lease)


def call_debits_post(
    *, batch: int = 200, client: redis.Redis | None = None, lease: int = LEASE_SECONDS
) -> int:
    """Post the queued call debits to the ledger; return how many entries were created.

    Each debit is its own transaction (under its workspace's balance lock) and is acknowledged
    only after it committed. Raises when the database fails: the claimed items stay leased and
    are claimed again once the lease ends.
    """
    outbox = _outbox(client or _sync_client(), lease)
    posted = 0
    while True:
        items = outbox.claim(batch)
        for item in items:
            posted += _post(outbox, item)
        if len(items) < batch:
            return posted


def _post(outbox: LeasedOutbox, item: bytes) -> int:
    try:
        debit = CallDebit.decode(item)
    except (ValueError, KeyError, TypeError) as exc:
        outbox.dead_letter([item])
        log.error("call_debits.unreadable", error=str(exc), key=DEAD_LETTER_KEY)
        return 0
    try:
        posting = ledger_post(
            workspace_id=debit.workspace_id,
            delta_micros=-debit.charge_micros,
            reason=f"{LedgerReason.FEATURE_PREFIX}{debit.feature}"[:100],
            idempotency_key=f"call:{debit.call_id}",
            metadata=debit.metadata,
        )
    except IntegrityError:
        # The workspace was deleted since the call: there is no ledger left to debit.
        log.warning("call_debits.workspace_gone", workspace_id=debit.workspace_id)
        outbox.ack([item])
        return 0
    _acknowledge(outbox.client, debit, posting)
    outbox.ack([item])
    return int(posting.created)


def _acknowledge(client: redis.Redis, debit: CallDebit, posting: Posting) -> None:
    """Take the call out of pending and keep the balance its debit produced (at most once)."""
    CreditHash(client).posted(
        schema=debit.schema,
        call_id=debit.call_id,
        balance_micros=posting.balance_micros,
        entry_id=posting.entry.pk,
        ttl=BALANCE_TTL,
    )


@dataclass(frozen=True, slots=True)
class CreditStatus:
    """A workspace's credit: the ledger balance, and what calls hold or owe beyond it."""

    balance_micros: int  # the ledger's running balance
    pending_micros: int  # settled calls whose debits are not posted yet
    reserved_micros: int  # the worst case of calls running now

    @property
    def available_micros(self) -> int:
        return self.balance_micros - self.pending_micros - self.reserved_micros


def credit_status(
    *, workspace_id: int, schema: str, client: redis.Redis | None = None
) -> CreditStatus:
    """The workspace's credit now (one query and one Redis read)."""
    balance = balance_get(workspace_id=workspace_id)
    pending, reserved = CreditHash(client or _sync_client()).outstanding(schema=schema)
    return CreditStatus(
        balance_micros=balance.balance_micros, pending_micros=pending, reserved_micros=reserved
    )
