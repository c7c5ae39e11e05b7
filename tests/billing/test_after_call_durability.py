"""After the provider answered, the call's settle, debit and record survive Redis dropping the
connection at any of them: retried once on a new connection, else kept in the database and
replayed by a task — exactly one call record and one ledger debit either way, the reservation
closed and nothing left pending. Redis misbehaves for real: a loopback proxy (tests/fakes)
drops the gateway's connection at the chosen command, before or after Redis ran it."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from apps.billing.debit_queue import QUEUE_KEY as DEBIT_QUEUE
from apps.billing.debit_queue import LedgerDebit, call_debits_post
from apps.billing.ledger import balance_get
from apps.billing.models import LedgerEntry
from apps.common.models import OutboxEntry
from apps.llm.adapters import AFTER_CALL_OUTBOX, DatabaseOutbox
from apps.llm.config import nominal_rate
from apps.llm.core.budget import _SETTLE, BudgetStore
from apps.llm.core.cache import ExactCache
from apps.llm.core.gateway import Gateway, GatewaySettings
from apps.llm.core.redis_batching import BatchingRedis
from apps.llm.services import Actor, ChatResponse, CreditHash, call_scope_for, llm_after_call_replay
from apps.traces.models import LlmCallLog
from apps.traces.services import DEAD_LETTER_KEY as RECORD_DEAD_LETTER
from apps.traces.services import PROCESSING_KEY as RECORD_PROCESSING
from apps.traces.services import QUEUE_KEY as RECORD_QUEUE
from apps.traces.services import RedisCallSink, call_records_flush
from apps.workspaces.models import Workspace
from tests.asgi_server import run_committed
from tests.fakes.redis_proxy import RedisProxy
from tests.gateway_support import ask, gateway_settings, unique

from .conftest import MakeWorkspace

pytestmark = pytest.mark.django_db

SETTLE_SHA = hashlib.sha1(_SETTLE.encode()).hexdigest().encode()
STAGES = {
    "settle": lambda args: args[0].upper() == b"EVALSHA" and args[1] == SETTLE_SHA,
    "debit": lambda args: args[0].upper() == b"RPUSH" and args[1] == DEBIT_QUEUE.encode(),
    "record": lambda args: args[0].upper() == b"RPUSH" and args[1] == RECORD_QUEUE.encode(),
}


@pytest.fixture
def record_queue(rds: redis.Redis) -> Iterator[None]:
    """The call-record queues, emptied for this test and given back afterwards."""
    token = uuid.uuid4().hex[:8]
    saved = {
        key: f"{key}:saved:{token}" for key in (RECORD_QUEUE, RECORD_PROCESSING, RECORD_DEAD_LETTER)
    }
    for key, aside in saved.items():
        if rds.exists(key):
            rds.rename(key, aside)
    yield
    for key, aside in saved.items():
        rds.delete(key)
        if rds.exists(aside):
            rds.rename(aside, key)


@pytest.fixture
def kept_rows() -> Iterator[None]:
    yield
    run_committed(lambda: OutboxEntry.objects.filter(kind=AFTER_CALL_OUTBOX).delete())


async def _call_through(url: str, workspace: Workspace) -> ChatResponse:
    """One chat call by the production gateway (its real ports), on a Redis client at `url`."""
    scope = await asyncio.to_thread(
        run_committed,
        lambda: call_scope_for(workspace=workspace, actor=Actor("system", "tests"), feature="chat"),
    )
    client = BatchingRedis.from_url(url, **settings.REDIS_TIMEOUTS)
    try:
        gateway = Gateway(
            budget=BudgetStore(client, reservation_ttl=settings.LLM_RESERVATION_TTL),
            cache=ExactCache(client),
            sink=RedisCallSink(client),
            debit=LedgerDebit(client),
            outbox=DatabaseOutbox(),
            settings=GatewaySettings(nominal_rate=nominal_rate()),
        )
        return await gateway.chat(scope, ask(unique("How do tenants work?")))
    finally:
        await client.aclose()


@pytest.mark.parametrize("stage", list(STAGES))
@pytest.mark.parametrize("when", ["before", "after"], ids=["before-redis-ran-it", "after"])
@pytest.mark.parametrize("times", [1, None], ids=["retry-gets-through", "redis-keeps-refusing"])
@pytest.mark.usefixtures("debit_queue", "record_queue", "kept_rows")
def test_a_connection_dropped_at_an_after_call_stage_leaves_one_record_and_one_debit(
    make_committed_workspace: MakeWorkspace,
    rds: redis.Redis,
    stage: str,
    when: str,
    times: int | None,
) -> None:
    # given a workspace with its plan's credit, and a Redis that drops at `stage`
    workspace = make_committed_workspace()
    start = run_committed(lambda: balance_get(workspace_id=workspace.pk).balance_micros)
    rds.script_load(_SETTLE)  # so that "after" means the settle really ran
    with gateway_settings(), RedisProxy(settings.REDIS_URL) as proxy:
        proxy.drop(STAGES[stage], when=when, times=times)
        # when a call is answered
        response = asyncio.run(_call_through(proxy.url, workspace))
    # then the caller got the answer whatever Redis did afterwards
    assert response.text
    assert response.cost_micros > 0
    assert proxy.drops >= 1
    kept = run_committed(lambda: OutboxEntry.objects.filter(kind=AFTER_CALL_OUTBOX).count())
    assert (kept > 0) == (times is None), kept  # retried, or kept in the database
    # and once the tasks ran (the database outbox, the debit queue, the call-record queue)
    run_committed(llm_after_call_replay)
    run_committed(call_debits_post)
    run_committed(call_records_flush)
    # exactly one call record and one debit, the reservation closed, nothing left pending
    calls = run_committed(lambda: list(LlmCallLog.objects.filter(trace_id=response.trace_id)))
    assert len(calls) == 1
    call_id = calls[0].call_id.hex
    debits = run_committed(
        lambda: list(LedgerEntry.objects.filter(idempotency_key=f"call:{call_id}"))
    )
    assert [d.delta_micros for d in debits] == [-response.cost_micros]
    assert run_committed(lambda: balance_get(workspace_id=workspace.pk).balance_micros) == (
        start - response.cost_micros
    )
    assert not rds.exists(f"llm:reservation:{call_id}")
    assert CreditHash(rds).outstanding(schema=workspace.schema_name) == (0, 0)
    assert run_committed(lambda: OutboxEntry.objects.filter(kind=AFTER_CALL_OUTBOX).count()) == 0
