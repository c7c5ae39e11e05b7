"""Zero PII residue: 1,000 synthetic calls with planted PII of every kind go through the real
gateway (offline local model, which quotes the prompt and tool results back) and the real flush.
No planted value may be left in llm_trace, llm_call_log, eval candidates, the dead-letter list
or the log output; the raw table must hold every one of them (so the test is not vacuous)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from apps.billing.ledger import ledger_post
from apps.billing.models import LedgerReason
from apps.evals.models import EvalCandidate
from apps.llm.adapters import run_sync
from apps.llm.config import call_scope_for
from apps.llm.core.context import Actor
from apps.llm.core.types import ChatRequest, ChatResponse, Message, Tool, ToolCall
from apps.llm.services import allm_chat
from apps.traces.models import LlmCallLog, LlmTrace, LlmTraceRaw
from apps.traces.services import DEAD_LETTER_KEY, QUEUE_KEY, call_records_flush
from apps.workspaces.models import AISettings, User, Workspace
from apps.workspaces.services import workspace_create
from tests.gateway_support import forget_redis_keys, gateway_settings, redis_client
from tests.traces.pii_samples import PiiFactory

pytestmark = pytest.mark.django_db

RECORDS = 1_000
CONCURRENCY = 50
LOOKUP = Tool(
    name="lookup_customer",
    description="Find a customer's account by their contact details.",
    parameters={"type": "object", "properties": {"email": {"type": "string"}}},
)
TRACE_COLUMNS = (
    "messages",
    "tools",
    "response_format",
    "params",
    "response",
    "tool_calls",
    "thinking",
    "safety_signals",
    "metadata",
    "score_comment",
)


@pytest.fixture
def workspace(owner: User) -> Iterator[Workspace]:
    """A workspace of its own with room for 1,000 calls today (Redis keys deleted after)."""
    # Records an earlier session left queued could name this workspace's id (a new test
    # database reuses ids): stored now, they belong to no workspace yet and are dropped.
    call_records_flush()
    created = workspace_create(name="PII", slug=f"pii{uuid.uuid4().hex[:12]}", owner=owner)
    AISettings.objects.update_or_create(
        workspace=created, defaults={"daily_token_limit": 1_000_000_000}
    )
    # Each call reserves its worst-case price against the credit balance, even offline.
    ledger_post(
        workspace_id=created.pk,
        delta_micros=1_000_000_000,
        reason=LedgerReason.TOPUP,
        idempotency_key=f"test-topup-{created.slug}",
    )
    yield created
    forget_redis_keys(f"*{created.schema_name}*")


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything the project's console handler would write, on a buffer."""
    config = dict(settings.LOGGING["formatters"]["structured"])
    formatter = config.pop("()")(**config)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def _record(case: int, pii: PiiFactory) -> tuple[ChatRequest, list[str]]:
    """One request with PII in the system prompt, the user message, tool arguments, a tool
    result and the metadata; and the values planted in it."""
    ours, theirs = pii.one_of_each(), pii.one_of_each()
    # A bare random string is no one's PII: a token is one by the header it travels in.
    said = {**ours, "bearer": f"Bearer {ours['bearer']}"}
    kinds = list(ours)
    first, second = kinds[case % len(kinds)], kinds[(case + 1) % len(kinds)]
    system = (
        f"You are a support agent for {theirs['email']}. Escalations go to {theirs['phone']}. "
        f"Internal key {theirs['token']}, refunds to {theirs['iban']}."
    )
    # The local model quotes the question's first sentence back: two values go in it.
    user = (
        f"Can you check {said[first]} and {said[second]} for me? "
        f"Mail {ours['email']}, call {ours['phone']}, card {ours['card']}, IBAN {ours['iban']}, "
        f"key {ours['token']}, header Authorization: Bearer {ours['bearer']}."
    )
    messages = [Message("system", system), Message("user", user)]
    if case % 2:
        # A tool round: the model's call (arguments) and the tool's result, which the local
        # model summarises in its answer.
        call = ToolCall(
            id=f"call_{case}",
            name=LOOKUP.name,
            arguments={"email": theirs["card"], "auth": f"Bearer {theirs['bearer']}"},
        )
        result = {"iban": ours["iban"], "card": ours["card"], "email": ours["email"]}
        messages += [
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", json.dumps(result), tool_call_id=call.id, name=LOOKUP.name),
        ]
    request = ChatRequest(
        alias="smart",
        messages=tuple(messages),
        tools=(LOOKUP,),
        metadata={"case": str(case), "customer": ours["email"], "callback": ours["phone"]},
    )
    planted = [*ours.values(), *(theirs[k] for k in ("email", "phone", "token", "iban"))]
    if case % 2:
        planted += [theirs["card"], theirs["bearer"]]
    return request, planted


async def _run_all(scope: Any, requests: list[ChatRequest]) -> list[ChatResponse]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(request: ChatRequest) -> ChatResponse:
        async with gate:
            return await allm_chat(scope=scope, request=request)

    return await asyncio.gather(*(one(r) for r in requests))


def _text(row: Any) -> str:
    return json.dumps(row, default=str, ensure_ascii=False)


def test_a_thousand_calls_with_planted_pii_leave_no_residue(
    workspace: Workspace, log_output: io.StringIO
) -> None:
    # given 1,000 requests carrying PII everywhere a call can carry it
    pii = PiiFactory(seed=8)
    cases = [_record(case, pii) for case in range(RECORDS)]
    planted = {case: values for case, (_, values) in enumerate(cases)}
    # and one record the flush cannot read, which carries PII too
    unreadable = f"not json: {planted[0][0]} {planted[0][2]}".encode()
    client = redis_client()
    dead_before = client.llen(DEAD_LETTER_KEY)

    started = time.perf_counter()
    with gateway_settings(), override_settings(EVALS_SAMPLE_RATE=1.0):
        scope = call_scope_for(
            workspace=workspace, actor=Actor("system", "pii-residue"), feature="pii.residue"
        )
        # when they go through the gateway and the flush
        responses = run_sync(_run_all(scope, [request for request, _ in cases]))
        called = time.perf_counter()
        client.rpush(QUEUE_KEY, unreadable)
        stored = call_records_flush()
    flushed = time.perf_counter()
    print(f"\n{RECORDS} gateway calls {called - started:.1f} s, flush {flushed - called:.1f} s")

    try:
        # then every call is stored, masked, with its raw copy
        assert stored == RECORDS
        assert all(r.offline for r in responses)
        traces = {
            int(row["metadata"]["case"]): row
            for row in LlmTrace.objects.filter(workspace=workspace).values(
                "pk", "call_id", *TRACE_COLUMNS
            )
        }
        calls = {row["id"]: row for row in LlmCallLog.objects.filter(workspace=workspace).values()}
        candidates = {
            str(row["trace_id"]): row
            for row in EvalCandidate.objects.filter(workspace=workspace).values()
        }
        raws = {
            row["trace_id"]: row
            for row in LlmTraceRaw.objects.filter(workspace=workspace).values(
                "trace_id", "messages", "response", "tool_calls", "thinking"
            )
        }
        assert len(traces) == len(calls) == len(raws) == RECORDS
        assert len(candidates) == RECORDS  # every call sampled (rate 1)

        echoed = 0
        for case, values in planted.items():
            trace = traces[case]
            call = calls[trace["call_id"]]
            candidate = candidates[str(call["trace_id"])]
            masked = _text({k: trace[k] for k in TRACE_COLUMNS}) + _text(call) + _text(candidate)
            raw = raws[trace["pk"]]
            raw_text = _text(raw["messages"]) + raw["response"]
            for value in values:
                assert value not in masked, (case, value)
                assert value in raw_text, (case, value)
            echoed += any(value in raw["response"] for value in values)
        # the model did quote PII back in its answers, and those were masked too
        assert echoed >= RECORDS * 0.9

        # the unreadable record waits in the dead-letter list, masked
        dead = client.lrange(DEAD_LETTER_KEY, dead_before, -1)
        assert dead == [b"not json: [EMAIL] [CARD]"]

        # and no log line carries any planted value
        logged = log_output.getvalue()
        assert "call_records.unreadable" in logged
        for values in planted.values():
            for value in values:
                assert value not in logged
    finally:
        if dead_before:
            client.ltrim(DEAD_LETTER_KEY, 0, dead_before - 1)
        else:
            client.delete(DEAD_LETTER_KEY)
