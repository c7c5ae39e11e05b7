"""The one record every call leaves: what it says of the call, and (through the real sink into
llm_call_log) that bad input never leaves a row claiming success."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aioredis
from django.conf import settings

from apps.llm.core.budget import BudgetStore
from apps.llm.core.cache import ExactCache
from apps.llm.core.context import Actor, CallScope
from apps.llm.core.errors import GatewayError
from apps.llm.core.gateway import Gateway
from apps.llm.core.pricing import PRICE_DATA_VERSION
from apps.llm.core.providers.local import LocalProvider
from apps.traces.models import LlmCallLog, LlmTrace
from apps.traces.services import RedisCallSink, call_records_flush
from apps.workspaces.models import Workspace

from .conftest import MakeScope, Rig, Vendor, ask, routing
from .gateway_cases import BAD_INPUT, BAD_INPUT_LIMITS, bad


@pytest.mark.asyncio
async def test_the_call_record_describes_the_call(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor
) -> None:
    # given a user's call with a known request id and prompt
    scope = make_scope({"openai": openai_fake.provider}, user_id=7, request_id="req-abc-123")
    request = ask(
        "hello world", prompt_name="greeting", prompt_version="3", metadata={"page": "home"}
    )
    started = time.time()
    # when
    response = await rig.gateway.chat(scope, request)
    # then one record, matching the answer
    record = rig.record
    assert (record.alias, record.provider, record.model) == ("smart", "openai", "gpt-4.1")
    assert (record.status, record.finish_reason, record.error_code) == ("ok", "stop", None)
    assert (record.input_tokens, record.output_tokens) == (2, 3)
    assert (record.cache_read_tokens, record.cache_write_tokens) == (0, 0)
    assert (record.cached, record.fallback_used, record.byok, record.offline) == (
        False,
        False,
        False,
        False,
    )
    assert record.cost_micros == response.cost_micros > 0
    assert record.request_id == response.request_id == "req-abc-123"
    assert record.trace_id == response.trace_id
    assert uuid.UUID(record.trace_id).hex == record.trace_id
    assert uuid.UUID(record.call_id).hex == record.call_id
    assert record.call_id != record.trace_id
    assert 0 < record.duration_ms <= response.duration_ms < 5000
    assert started <= record.started_at <= time.time()
    assert record.price_version == PRICE_DATA_VERSION
    assert (record.schema, record.workspace_id, record.actor_type, record.actor_id) == (
        scope.schema,
        scope.workspace_id,
        "user",
        "7",
    )
    assert (record.feature, record.prompt_name, record.prompt_version) == ("chat", "greeting", "3")
    assert record.trace["messages"] == [
        {
            "role": "user",
            "content": "hello world",
            "tool_calls": (),
            "tool_call_id": None,
            "name": None,
        }
    ]
    assert record.trace["response"] == response.text == "Echo: hello world"
    assert record.trace["metadata"] == {"page": "home"}


def test_bad_input_never_leaves_a_call_log_claiming_success(acme: Workspace) -> None:
    # given the real sink: records queued in Redis, flushed by Django into llm_call_log
    token = uuid.uuid4().hex[:12]
    feature = f"bad-input-{token}"
    requests = [bad(cast(dict[str, Any], p.values[0])) for p in BAD_INPUT] + [
        ask("a fine question")
    ]

    async def calls() -> None:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        gateway = Gateway(
            budget=BudgetStore(client, prefix=f"testllm_{token}"),
            cache=ExactCache(client),
            sink=RedisCallSink(client),
        )
        scope = CallScope(
            schema=f"acme_{token}",
            workspace_id=acme.pk,
            actor=Actor("system", "tests"),
            feature=feature,
            routing=routing("local"),
            providers={"local": LocalProvider(tokens_per_second=0)},
            limits=BAD_INPUT_LIMITS,
        )
        try:
            for request in requests:
                with contextlib.suppress(GatewayError):
                    await gateway.chat(scope, request)
            assert await gateway.budget.open_reservations() == 0
        finally:
            keys = [k async for k in client.scan_iter(match=f"*{token}*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    asyncio.run(calls())
    # when
    call_records_flush(client=redis.Redis.from_url(settings.REDIS_URL))
    # then one row per call: an error for each bad input, ok only for the fine one
    rows = list(LlmCallLog.objects.filter(workspace=acme, feature=feature))
    assert Counter(r.status for r in rows) == {"error": len(BAD_INPUT), "ok": 1}
    assert all(r.error_code for r in rows if r.status == "error")
    assert {r.error_code for r in rows if r.status == "error"} == {
        "invalid_request",
        "unknown_alias",
    }
    assert LlmTrace.objects.filter(call__in=rows).count() == len(rows)
