"""The credit balance as a reservation scope, and the call debits behind it: concurrent calls
never overdraw, every charged call is debited exactly once (also when the worker is killed),
and BYOK calls pay only the platform fee."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from dataclasses import replace

import pytest
import redis
import time_machine
from django.conf import settings
from django.test import override_settings

from apps.billing.debit_queue import PROCESSING_KEY, QUEUE_KEY, LedgerDebit, call_debits_post
from apps.billing.ledger import balance_get
from apps.billing.models import LedgerEntry
from apps.llm.adapters import run_sync
from apps.llm.config import call_scope_for
from apps.llm.core.budget import BudgetStore, Scope
from apps.llm.core.context import Actor, CallRecord
from apps.llm.core.credit_hash import BALANCE_POSTED, balance_key
from apps.llm.core.errors import BudgetExceededError
from apps.llm.core.redis_batching import BatchingRedis
from apps.llm.core.types import ChatResponse
from apps.llm.services import allm_chat
from apps.workspaces.models import Workspace
from tests.asgi_server import run_committed
from tests.billing import workers
from tests.billing.conftest import MakeWorkspace, balance_set
from tests.gateway_support import ask, gateway_settings, unique


def _int_field(client: redis.Redis, key: str, field: str) -> int:
    value = client.hget(key, field)
    assert value is not None, f"{key} has no {field}"
    return int(value)


def _balance_scope(schema: str, *, limit: int, seq: int, amount: int) -> Scope:
    return Scope(
        name="credit_balance",
        key=balance_key(schema),
        limit=limit,
        amount=amount,
        unit="micro-dollars",
        ttl=86400,
        seq=seq,
    )


async def _store() -> tuple[BudgetStore, redis.asyncio.Redis]:
    client = BatchingRedis.from_url(settings.REDIS_URL)
    return BudgetStore(client, prefix=f"testcredit_{uuid.uuid4().hex[:8]}"), client


def test_concurrent_reservations_never_exceed_the_balance(rds: redis.Redis) -> None:
    schema = f"credit_{uuid.uuid4().hex[:10]}"

    async def scenario() -> list[object]:
        store, client = await _store()
        scope = _balance_scope(schema, limit=10_000, seq=1, amount=3_000)
        try:
            return await asyncio.gather(
                *(store.reserve([scope]) for _ in range(50)), return_exceptions=True
            )
        finally:
            await client.aclose()

    try:
        results = run_sync(scenario())
        refused = [r for r in results if isinstance(r, BudgetExceededError)]
        assert len(results) - len(refused) == 3
        assert {r.denial.scope for r in refused} == {"credit_balance"}
        assert all("Out of credits" in r.message for r in refused)
        assert _int_field(rds, balance_key(schema), "reserved") == 9_000
    finally:
        rds.delete(balance_key(schema))


def test_pending_counts_until_the_debit_is_acknowledged_once(rds: redis.Redis) -> None:
    schema = f"credit_{uuid.uuid4().hex[:10]}"
    key = balance_key(schema)

    async def scenario() -> None:
        store, client = await _store()
        try:
            first = await store.reserve(
                [_balance_scope(schema, limit=10_000, seq=5, amount=6_000)], reservation_id="c1"
            )
            await store.settle(first, {"credit_balance": 4_000})
            # The settled 4000 is pending: 6000 more would overdraw.
            with pytest.raises(BudgetExceededError):
                await store.reserve([_balance_scope(schema, limit=10_000, seq=5, amount=6_001)])
            # A stale read of the ledger (seq 4) does not replace the stored balance.
            with pytest.raises(BudgetExceededError):
                await store.reserve([_balance_scope(schema, limit=99_999, seq=4, amount=6_001)])
        finally:
            await client.aclose()

    try:
        run_sync(scenario())
        assert rds.ttl(key) == -1  # never expires while something is pending
        ack = rds.register_script(BALANCE_POSTED)
        assert ack(keys=[key], args=[6_000, 6, "c1", 86400]) == 1
        assert ack(keys=[key], args=[6_000, 6, "c1", 86400]) == 0  # a repeat changes nothing
        assert _int_field(rds, key, "pending") == 0
        assert _int_field(rds, key, "limit") == 6_000
        assert not rds.hexists(key, "p:c1")
        assert rds.ttl(key) > 0
    finally:
        rds.delete(key)


def test_concurrent_gateway_calls_never_overdraw(
    workspace: Workspace, debit_queue: redis.Redis
) -> None:
    balance_set(workspace, 40_000)  # a few calls' worst case: the rest must be refused
    balance_entry = balance_get(workspace_id=workspace.pk).last_entry_id
    with gateway_settings():
        scope = call_scope_for(workspace=workspace, actor=Actor("system", "tests"), feature="chat")

        async def many() -> list[object]:
            return await asyncio.gather(
                *(allm_chat(scope=scope, request=ask(unique("hi"))) for _ in range(20)),
                return_exceptions=True,
            )

        results = run_sync(many())
    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    answered = [r for r in results if isinstance(r, ChatResponse)]
    assert len(refused) + len(answered) == 20
    assert answered
    assert refused
    assert {(e.status, e.denial.scope) for e in refused} == {(402, "credit_balance")}

    assert call_debits_post() == len(answered)

    balance = balance_get(workspace_id=workspace.pk).balance_micros
    debits = LedgerEntry.objects.filter(
        workspace=workspace, reason="feature.chat", pk__gt=balance_entry
    )
    assert debits.count() == len(answered)
    assert balance == 40_000 - sum(a.cost_micros for a in answered) >= 0
    entry = debits.first()
    assert entry is not None
    assert set(entry.metadata) >= {"call_id", "trace_id", "alias", "provider", "model", "tokens"}
    assert entry.idempotency_key == f"call:{entry.metadata['call_id']}"
    state = debit_queue.hgetall(balance_key(workspace.schema_name))
    assert int(state[b"pending"]) == 0
    assert int(state[b"reserved"]) == 0
    assert int(state[b"limit"]) == balance


def test_at_zero_the_gateway_refuses_before_any_model_call(
    workspace: Workspace, debit_queue: redis.Redis
) -> None:
    balance_set(workspace, 0)
    with gateway_settings():
        scope = call_scope_for(workspace=workspace, actor=Actor("system", "tests"), feature="chat")
        with pytest.raises(BudgetExceededError) as refused:
            run_sync(allm_chat(scope=scope, request=ask(unique("hi"))))
    assert refused.value.status == 402
    assert debit_queue.llen(QUEUE_KEY) == 0


def _record(workspace: Workspace, **changes: object) -> CallRecord:
    record = CallRecord(
        call_id=uuid.uuid4().hex,
        request_id="r",
        trace_id=uuid.uuid4().hex,
        schema=workspace.schema_name,
        workspace_id=workspace.pk,
        actor_type="system",
        actor_id="tests",
        feature="chat",
        alias="smart",
        provider="anthropic",
        model="claude-sonnet-4-6",
        status="ok",
        input_tokens=100,
        output_tokens=50,
        cache_read_tokens=0,
        cache_write_tokens=0,
        cost_micros=1_050,
        cached=False,
        fallback_used=False,
        byok=False,
        offline=False,
        duration_ms=1.0,
        started_at=time.time(),
        finish_reason="stop",
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def _queue(*records: CallRecord) -> None:
    async def push() -> None:
        client = BatchingRedis.from_url(settings.REDIS_URL)
        try:
            for record in records:
                await LedgerDebit(client).debit(record)
        finally:
            await client.aclose()

    run_sync(push())


def test_byok_calls_debit_no_provider_cost(workspace: Workspace, debit_queue: redis.Redis) -> None:
    _queue(_record(workspace, byok=True), _record(workspace, cached=True))

    assert debit_queue.llen(QUEUE_KEY) == 0
    assert call_debits_post() == 0
    assert balance_get(workspace_id=workspace.pk).balance_micros == 1_000_000


@override_settings(BILLING_BYOK_FEE_MICROS=300)
def test_byok_calls_pay_the_platform_fee_when_set(
    workspace: Workspace, debit_queue: redis.Redis
) -> None:
    record = _record(workspace, byok=True)
    _queue(record, _record(workspace))

    assert call_debits_post() == 2
    fee = LedgerEntry.objects.get(idempotency_key=f"call:{record.call_id}")
    assert fee.delta_micros == -300
    assert fee.metadata["byok"] is True
    assert balance_get(workspace_id=workspace.pk).balance_micros == 1_000_000 - 300 - 1_050


def test_a_replayed_queue_debits_once(workspace: Workspace, debit_queue: redis.Redis) -> None:
    record = _record(workspace)
    _queue(record, record, record)

    assert call_debits_post() == 1
    assert LedgerEntry.objects.filter(idempotency_key=f"call:{record.call_id}").count() == 1
    assert debit_queue.zcard(PROCESSING_KEY) == 0


def _pending_call(workspace: Workspace, rds: redis.Redis) -> CallRecord:
    """A settled call as the gateway leaves it: pending in the credit hash, queued for debit."""
    record = _record(workspace)
    key = balance_key(workspace.schema_name)
    balance = balance_get(workspace_id=workspace.pk)
    rds.hset(
        key,
        mapping={
            "limit": balance.balance_micros,
            "seq": balance.last_entry_id,
            "reserved": 0,
            "pending": record.cost_micros,
            f"p:{record.call_id}": record.cost_micros,
        },
    )
    _queue(record)
    return record


@pytest.mark.parametrize("where", ["before_commit", "before_ack"])
def test_a_worker_killed_mid_debit_leaves_neither_a_lost_nor_a_double_debit(
    make_committed_workspace: MakeWorkspace,
    debit_queue: redis.Redis,
    child_env: dict[str, str],
    where: str,
) -> None:
    workspace = make_committed_workspace()
    record = _pending_call(workspace, debit_queue)
    key = f"call:{record.call_id}"

    child = multiprocessing.get_context("spawn").Process(
        target=workers.post_debits_then_die, args=(where, 1)
    )
    child.start()
    child.join(120)
    assert child.exitcode == -9  # SIGKILL, at the chosen point

    committed = run_committed(lambda: LedgerEntry.objects.filter(idempotency_key=key).count())
    assert committed == (1 if where == "before_ack" else 0)
    assert debit_queue.zcard(PROCESSING_KEY) == 1  # still leased: not lost
    assert _int_field(debit_queue, balance_key(workspace.schema_name), "pending") == 1_050

    # when the next worker runs after the dead one's 1 s lease ended (the clock moved, not slept)
    with time_machine.travel(time.time() + 2):
        created = run_committed(call_debits_post)

    assert created == (0 if where == "before_ack" else 1)
    assert run_committed(lambda: LedgerEntry.objects.filter(idempotency_key=key).count()) == 1
    balance = run_committed(lambda: balance_get(workspace_id=workspace.pk).balance_micros)
    assert balance == 1_000_000 - 1_050
    state = debit_queue.hgetall(balance_key(workspace.schema_name))
    assert int(state[b"pending"]) == 0
    assert int(state[b"limit"]) == balance
    assert debit_queue.zcard(PROCESSING_KEY) == 0


def test_a_call_that_can_cost_nothing_reserves_and_settles(rds: redis.Redis) -> None:
    # A BYOK call without a fee, or an embedding too cheap to round to a micro-dollar.
    schema = f"credit_{uuid.uuid4().hex[:10]}"

    async def scenario() -> None:
        store, client = await _store()
        try:
            reservation = await store.reserve([_balance_scope(schema, limit=0, seq=1, amount=0)])
            assert await store.settle(reservation, {"credit_balance": 0})
        finally:
            await client.aclose()

    try:
        run_sync(scenario())
        assert _int_field(rds, balance_key(schema), "reserved") == 0
    finally:
        rds.delete(balance_key(schema))
