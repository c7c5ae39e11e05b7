"""The gateway pipeline on real Redis against the fake vendors: reservations that never outlive
their call, retry → fallback → circuit breaker, the per-workspace exact cache, metering,
structured outputs, and bad input refused with typed errors."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

import genai_prices
import pytest
import redis
import redis.asyncio as aioredis
from django.conf import settings

from apps.llm.core.budget import BudgetStore
from apps.llm.core.cache import ExactCache
from apps.llm.core.context import Actor, CallScope, Limits, daily_scopes
from apps.llm.core.errors import (
    GatewayError,
    InvalidRequestError,
    ProviderError,
    ProviderUnavailableError,
    StructuredOutputError,
    UnknownAliasError,
)
from apps.llm.core.gateway import Gateway, GatewaySettings
from apps.llm.core.pricing import PRICE_DATA_VERSION, NominalRate
from apps.llm.core.providers.local import LocalProvider
from apps.llm.core.resilience import CircuitBreaker
from apps.llm.core.types import (
    ChatRequest,
    Message,
    ResponseFormat,
    StreamEvent,
    Tool,
    Usage,
)
from apps.traces.models import LlmCallLog, LlmTrace
from apps.traces.services import RedisCallSink, call_records_flush
from apps.workspaces.models import Workspace
from tests.fakes import Fault, Reply

from .conftest import KEY, MODELS, MakeRig, MakeScope, Names, Rig, Vendor, ask, both, routing


async def _until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


# --- no reservation outlives its call ----------------------------------------------------


@pytest.mark.asyncio
async def test_success_settles_the_actual_usage_and_leaves_no_reservation(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor
) -> None:
    # given a user's call
    scope = make_scope({"openai": openai_fake.provider}, user_id=7)
    # when
    response = await rig.gateway.chat(scope, ask("hello world", max_tokens=500))
    # then the counters hold what was used (the fake's 2 words in, 3 out), not the worst case
    assert response.text == "Echo: hello world"
    assert response.usage == Usage(input_tokens=2, output_tokens=3)
    usage = await rig.usage(scope)
    assert usage["workspace_day_tokens"].used == 5
    assert usage["user_day_requests"].used == 1
    await rig.assert_nothing_reserved(scope)
    assert rig.record.status == "ok"


@pytest.mark.asyncio
async def test_a_provider_error_leaves_no_reservation_and_counts_nothing(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor
) -> None:
    # given a provider that refuses the request (400: not retryable)
    openai_fake.server.fail_next(Fault.http(400))
    scope = make_scope({"openai": openai_fake.provider}, user_id=7)
    # when
    with pytest.raises(ProviderError) as failed:
        await rig.gateway.chat(scope, ask())
    # then
    assert (failed.value.kind, failed.value.http_status) == ("bad_request", 400)
    usage = await rig.usage(scope)
    assert (usage["workspace_day_tokens"].used, usage["user_day_requests"].used) == (0, 0)
    await rig.assert_nothing_reserved(scope)
    assert (rig.record.status, rig.record.error_code) == ("error", "provider_error")


@pytest.mark.asyncio
async def test_every_route_failing_is_unavailable_and_leaves_no_reservation(
    rig: Rig, make_scope: MakeScope, pair: tuple[Vendor, Vendor]
) -> None:
    # given primary and fallback both failing
    primary, fallback = pair
    primary.server.fail_next(Fault.server_error(), times=2)
    fallback.server.fail_next(
        Fault.overloaded() if fallback.name == "anthropic" else Fault.http(503)
    )
    scope = make_scope(**both(pair))
    # when
    with pytest.raises(ProviderUnavailableError) as failed:
        await rig.gateway.chat(scope, ask())
    # then: the primary, its one retry, the one fallback — and nothing else
    assert failed.value.status == 503
    assert (primary.calls, fallback.calls) == (2, 1)
    assert failed.value.attempts == (
        f"{primary.name}/{MODELS[primary.name]}: error",
        f"{primary.name}/{MODELS[primary.name]}: error",
        f"{fallback.name}/{MODELS[fallback.name]}: overloaded",
    )
    await rig.assert_nothing_reserved(scope)
    assert (rig.record.status, rig.record.error_code) == ("error", "provider_unavailable")


@pytest.mark.asyncio
async def test_a_cancelled_call_leaves_no_reservation(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor
) -> None:
    # given a call waiting on a provider that holds its answer
    openai_fake.server.fail_next(Fault.timeout(hold=5))
    scope = make_scope({"openai": openai_fake.provider}, user_id=7)
    task = asyncio.create_task(rig.gateway.chat(scope, ask()))
    await _until(lambda: openai_fake.calls == 1)
    # when the caller goes away
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # then the reservation is gone, the call is recorded as cancelled, the upstream closed
    await rig.assert_nothing_reserved(scope)
    assert rig.record.status == "cancelled"
    request = openai_fake.server.last_request
    assert await request.wait_done_async(2.0)
    assert request.client_disconnected


@pytest.mark.asyncio
async def test_a_killed_process_reservation_is_released_by_the_janitor(
    rig: Rig, make_scope: MakeScope, local: LocalProvider
) -> None:
    # given a process that reserved its worst case and died before settling
    scope = make_scope({"local": local}, user_id=7)
    ttl = rig.gateway.settings.reservation_ttl
    await rig.budget.reserve(daily_scopes(scope, tokens=500), ttl=ttl)
    # and a call that completed meanwhile
    response = await rig.gateway.chat(scope, ask())
    usage = await rig.usage(scope)
    assert (usage["workspace_day_tokens"].reserved, usage["user_day_requests"].reserved) == (500, 1)
    # when the janitor runs after the reservation's TTL
    released = await rig.budget.janitor(now=time.time() + ttl + 1)
    # then only the dead call's reservation is released; the finished call still counts
    assert released == 1
    await rig.assert_nothing_reserved(scope)
    usage = await rig.usage(scope)
    assert usage["workspace_day_tokens"].used == response.usage.total_tokens
    assert usage["user_day_requests"].used == 1


# --- retry, fallback, circuit breaker ----------------------------------------------------

RETRYABLE = [
    pytest.param(Fault.server_error(), "error", id="500"),
    pytest.param(Fault.rate_limited(retry_after=0), "rate_limit", id="429"),
    pytest.param(Fault.timeout(hold=3.0), "timeout", id="timeout"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("fault", "kind"), RETRYABLE)
async def test_a_retryable_failure_is_retried_then_falls_back(
    rig: Rig, make_scope: MakeScope, pair: tuple[Vendor, Vendor], fault: Fault, kind: str
) -> None:
    # given a primary that fails twice (a short timeout makes the held answer a timeout)
    primary, fallback = pair
    primary.server.fail_next(fault, times=2)
    scope = make_scope(**both(pair), timeout=0.25)
    # when
    response = await rig.gateway.chat(scope, ask("hello world"))
    # then the primary was tried twice, then the secondary answered
    assert response.text == "Echo: hello world"
    assert (response.fallback_used, response.provider, response.model) == (
        True,
        fallback.name,
        MODELS[fallback.name],
    )
    assert (primary.calls, fallback.calls) == (2, 1)
    record = rig.record
    assert (record.status, record.fallback_used, record.provider) == ("ok", True, fallback.name)
    assert record.attempts == (f"{primary.name}/{MODELS[primary.name]}: {kind}",) * 2
    assert rig.breaker.fallbacks[primary.name] == 1
    await rig.assert_nothing_reserved(scope)


@pytest.mark.asyncio
async def test_one_failure_is_retried_on_the_primary(
    rig: Rig, make_scope: MakeScope, pair: tuple[Vendor, Vendor]
) -> None:
    # given a primary that fails once
    primary, fallback = pair
    primary.server.fail_next(Fault.server_error())
    scope = make_scope(**both(pair))
    # when
    response = await rig.gateway.chat(scope, ask())
    # then its retry answered
    assert (response.fallback_used, response.provider) == (False, primary.name)
    assert (primary.calls, fallback.calls) == (2, 0)


@pytest.mark.asyncio
async def test_a_short_retry_after_is_waited_out_before_the_retry(
    rig: Rig, make_scope: MakeScope, pair: tuple[Vendor, Vendor]
) -> None:
    # given a 429 asking for 0.3 s (under the 1 s cap)
    primary, fallback = pair
    primary.server.fail_next(Fault.rate_limited(retry_after=0.3))
    scope = make_scope(**both(pair))
    started = time.monotonic()
    # when
    response = await rig.gateway.chat(scope, ask())
    # then
    assert time.monotonic() - started >= 0.3
    assert (response.fallback_used, primary.calls, fallback.calls) == (False, 2, 0)


@pytest.mark.asyncio
async def test_a_retry_after_longer_than_the_cap_skips_the_retry(
    rig: Rig, make_scope: MakeScope, pair: tuple[Vendor, Vendor]
) -> None:
    # given a 429 asking for 30 s, over the 1 s cap
    primary, fallback = pair
    primary.server.fail_next(Fault.rate_limited(retry_after=30))
    scope = make_scope(**both(pair))
    started = time.monotonic()
    # when
    response = await rig.gateway.chat(scope, ask())
    # then straight to the fallback, without waiting
    assert time.monotonic() - started < 1.0
    assert response.fallback_used is True
    assert (primary.calls, fallback.calls) == (1, 1)


@pytest.mark.asyncio
@pytest.mark.parametrize("primary_name", ["anthropic", "openai"])
async def test_a_rejected_key_neither_retries_nor_falls_back(
    rig: Rig, make_scope: MakeScope, start_vendor: Callable[..., Vendor], primary_name: str
) -> None:
    # given a primary that knows another key (OpenAI's 401 echoes the key, masked)
    primary = start_vendor(primary_name, api_key="sk-the-right-one")
    fallback = start_vendor("openai" if primary_name == "anthropic" else "anthropic")
    scope = make_scope(**both((primary, fallback)))
    # when
    with pytest.raises(ProviderError) as failed:
        await rig.gateway.chat(scope, ask())
    # then a typed auth error, no retry, no fallback, and no trace of the key
    err = failed.value
    assert (err.kind, err.retryable, err.http_status, err.provider) == (
        "auth",
        False,
        401,
        primary_name,
    )
    assert err.message == f"{primary_name} rejected the API key (HTTP 401)."
    assert (primary.calls, fallback.calls) == (1, 0)
    record = rig.record
    for text in (str(err), repr(err.args), record.error_message or "", repr(record)):
        assert KEY not in text
        assert KEY[-4:] not in text
    assert record.status == "error"
    await rig.assert_nothing_reserved(scope)


@pytest.mark.asyncio
async def test_an_open_circuit_sends_the_next_call_straight_to_the_fallback(
    make_rig: MakeRig, make_scope: MakeScope, pair: tuple[Vendor, Vendor]
) -> None:
    # given a breaker that opens after 2 retryable failures, and a primary failing twice
    rig = make_rig(breaker=CircuitBreaker(threshold=2, cooldown=60))
    primary, fallback = pair
    primary.server.fail_next(Fault.server_error(), times=2)
    scope = make_scope(**both(pair))
    first = await rig.gateway.chat(scope, ask("first question"))
    assert (first.fallback_used, primary.calls, fallback.calls) == (True, 2, 1)
    assert rig.breaker.is_open(primary.name)
    # when the next call comes
    second = await rig.gateway.chat(scope, ask("second question"))
    # then the primary is not even tried
    assert (second.fallback_used, second.provider) == (True, fallback.name)
    assert (primary.calls, fallback.calls) == (2, 2)
    assert rig.records[-1].attempts == ()
    assert rig.breaker.fallbacks[primary.name] == 1


@pytest.mark.asyncio
async def test_after_the_cool_down_one_trial_call_is_let_through(
    make_rig: MakeRig, make_scope: MakeScope, pair: tuple[Vendor, Vendor]
) -> None:
    # given the primary's circuit opened on a failure, and its cool-down (0.3 s) has passed
    rig = make_rig(breaker=CircuitBreaker(threshold=1, cooldown=0.3))
    primary, fallback = pair
    primary.server.fail_next(Fault.server_error())
    primary.server.fail_next(Fault.timeout(hold=3.0))
    scope = make_scope(**both(pair), timeout=0.4)
    await rig.gateway.chat(scope, ask("opens the circuit"))
    assert (primary.calls, fallback.calls) == (1, 1)  # no retry into a circuit that just opened
    await asyncio.sleep(0.31)
    # when a trial call is stuck on the primary and more calls arrive meanwhile
    trial = asyncio.create_task(rig.gateway.chat(scope, ask("the trial")))
    await _until(lambda: primary.calls == 2)
    others = await asyncio.gather(*(rig.gateway.chat(scope, ask(f"now {i}")) for i in range(3)))
    # then those go straight to the fallback instead of waiting on the primary too
    assert [o.provider for o in others] == [fallback.name] * 3
    # and the trial times out, falls back without a retry, and leaves the circuit open
    assert (await trial).fallback_used is True
    assert primary.calls == 2
    assert rig.breaker.is_open(primary.name)


@pytest.mark.asyncio
async def test_a_workspaces_own_failing_key_does_not_open_the_circuit_for_others(
    make_rig: MakeRig,
    make_scope: MakeScope,
    start_vendor: Callable[..., Vendor],
    names: Names,
) -> None:
    # given acme brings its own OpenAI key, which is rate-limited; globex uses the platform's
    rig = make_rig(breaker=CircuitBreaker(threshold=2, cooldown=60))
    acme_openai, platform_openai = start_vendor("openai"), start_vendor("openai")
    anthropic = start_vendor("anthropic")
    acme_openai.server.fail_next(Fault.rate_limited(retry_after=0), times=2)
    acme = make_scope(
        {"openai": acme_openai.provider, "anthropic": anthropic.provider},
        primary="openai",
        fallback="anthropic",
        schema=names.schema("acme"),
        byok=frozenset({"openai"}),
    )
    globex = make_scope(
        {"openai": platform_openai.provider, "anthropic": anthropic.provider},
        primary="openai",
        fallback="anthropic",
        schema=names.schema("globex"),
    )
    assert (await rig.gateway.chat(acme, ask("first"))).fallback_used is True
    # when globex calls
    answer = await rig.gateway.chat(globex, ask("second"))
    # then the platform's OpenAI still answers it, while acme's own circuit is open
    assert (answer.provider, answer.fallback_used, platform_openai.calls) == ("openai", False, 1)
    assert (await rig.gateway.chat(acme, ask("third"))).fallback_used is True
    assert acme_openai.calls == 2


# --- exact cache ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_identical_request_is_answered_from_the_workspace_cache(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor
) -> None:
    # given acme asked once
    acme = make_scope({"openai": openai_fake.provider})
    first = await rig.gateway.chat(acme, ask("What is our refund policy?"))
    # when it asks the very same again
    second = await rig.gateway.chat(acme, ask("What is our refund policy?"))
    # then the provider is not called again and the answer costs nothing
    assert openai_fake.calls == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.text == first.text
    assert first.cost_micros > 0
    assert (second.cost_micros, second.usage) == (0, Usage())
    assert [(r.cached, r.cost_micros == 0, r.status) for r in rig.records] == [
        (False, False, "ok"),
        (True, True, "ok"),
    ]
    assert await rig.tokens_used(acme) == first.usage.total_tokens
    await rig.assert_nothing_reserved(acme)


@pytest.mark.asyncio
async def test_another_workspace_is_never_served_from_acmes_cache(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor, names: Names
) -> None:
    # given acme's answer is cached
    providers = {"openai": openai_fake.provider}
    acme = make_scope(providers, schema=names.schema("acme"))
    globex = make_scope(providers, schema=names.schema("globex"))
    await rig.gateway.chat(acme, ask("What is our refund policy?"))
    # when globex sends the byte-identical request
    answer = await rig.gateway.chat(globex, ask("What is our refund policy?"))
    # then globex gets its own call, which its own cache then serves
    assert answer.cached is False
    assert openai_fake.calls == 2
    again = await rig.gateway.chat(globex, ask("What is our refund policy?"))
    assert again.cached is True
    assert openai_fake.calls == 2


@pytest.mark.asyncio
async def test_cache_false_neither_reads_nor_writes_the_cache(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor
) -> None:
    # given
    scope = make_scope({"openai": openai_fake.provider})
    # when the same request is sent twice with cache=False, then once with the cache
    answers = [
        await rig.gateway.chat(scope, ask("Regenerate this", cache=False)),
        await rig.gateway.chat(scope, ask("Regenerate this", cache=False)),
        await rig.gateway.chat(scope, ask("Regenerate this")),
    ]
    # then every one reached the provider
    assert [a.cached for a in answers] == [False, False, False]
    assert openai_fake.calls == 3


@pytest.mark.asyncio
async def test_a_fallback_answer_is_not_cached_as_the_primary_models(
    rig: Rig, make_scope: MakeScope, pair: tuple[Vendor, Vendor]
) -> None:
    # given the fallback answered while the primary was down
    primary, fallback = pair
    primary.server.fail_next(Fault.server_error(), times=2)
    scope = make_scope(**both(pair))
    first = await rig.gateway.chat(scope, ask("What is our refund policy?"))
    assert first.fallback_used is True
    # when the same request comes again, the primary healthy
    again = await rig.gateway.chat(scope, ask("What is our refund policy?"))
    # then the primary answers it (the cache key names the primary's model), and caches it
    assert (again.cached, again.provider, again.model) == (
        False,
        primary.name,
        MODELS[primary.name],
    )
    assert (primary.calls, fallback.calls) == (3, 1)
    assert (await rig.gateway.chat(scope, ask("What is our refund policy?"))).cached is True


@pytest.mark.asyncio
async def test_different_parameters_are_different_cache_entries(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor
) -> None:
    # given
    scope = make_scope({"openai": openai_fake.provider})
    # when the same text is asked with another temperature, then another max_tokens
    await rig.gateway.chat(scope, ask("Same words"))
    await rig.gateway.chat(scope, ask("Same words", temperature=0.9))
    await rig.gateway.chat(scope, ask("Same words", max_tokens=7))
    # then
    assert openai_fake.calls == 3


# --- metering ------------------------------------------------------------------------------


def _genai_micros(provider: str, model: str, usage: Usage) -> int:
    price = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        ),
        model_ref=model,
        provider_id=provider,
    )
    dollars = Decimal(price.total_price) * 1_000_000
    return int(dollars.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@pytest.mark.asyncio
async def test_cost_is_genai_prices_including_cache_reads_and_writes(
    rig: Rig, make_scope: MakeScope, vendor: Vendor
) -> None:
    # given a reply that read 2,000 prompt tokens from the provider's cache and wrote 300
    vendor.server.reply_next(
        Reply(
            text="ok",
            input_tokens=1000,
            output_tokens=500,
            cache_read_tokens=2000,
            cache_write_tokens=300,
        )
    )
    scope = make_scope({vendor.name: vendor.provider})
    # when
    response = await rig.gateway.chat(scope, ask())
    # then
    usage = Usage(
        input_tokens=3300, output_tokens=500, cache_read_tokens=2000, cache_write_tokens=300
    )
    assert response.usage == usage
    expected = _genai_micros(vendor.name, MODELS[vendor.name], usage)
    assert response.cost_micros == expected
    assert expected != _genai_micros(
        vendor.name, MODELS[vendor.name], replace(usage, cache_read_tokens=0, cache_write_tokens=0)
    )
    record = rig.record
    assert (record.cost_micros, record.cache_read_tokens, record.cache_write_tokens) == (
        expected,
        2000,
        300,
    )
    assert record.price_version == PRICE_DATA_VERSION == f"genai-prices {genai_prices.__version__}"


@pytest.mark.asyncio
async def test_the_offline_model_is_charged_the_nominal_rate(
    make_rig: MakeRig, make_scope: MakeScope, local: LocalProvider
) -> None:
    # given $2 / M input tokens and $8 / M output tokens
    rate = NominalRate(input_per_mtok=2_000_000, output_per_mtok=8_000_000)
    rig = make_rig(gateway_settings=GatewaySettings(nominal_rate=rate))
    scope = make_scope({"local": local})
    # when
    response = await rig.gateway.chat(scope, ask("What should I pack for Amsterdam?"))
    # then 2 micro-dollars per input token and 8 per output token, labelled offline
    usage = response.usage
    assert usage.input_tokens > 0
    assert usage.output_tokens > 0
    assert response.cost_micros == 2 * usage.input_tokens + 8 * usage.output_tokens
    assert (response.provider, response.model, response.offline) == ("local", "local-smart", True)
    assert (rig.record.cost_micros, rig.record.offline) == (response.cost_micros, True)
    assert await rig.tokens_used(scope) == usage.total_tokens


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


# --- structured output ---------------------------------------------------------------------

CARD = {
    "type": "object",
    "properties": {"title": {"type": "string"}},
    "required": ["title"],
    "additionalProperties": False,
}
CARD_FORMAT = ResponseFormat(type="json_schema", json_schema=CARD, name="card")


@pytest.mark.asyncio
async def test_an_invalid_structured_reply_is_retried_once_with_the_error(
    rig: Rig, make_scope: MakeScope, vendor: Vendor
) -> None:
    # given a model that first answers in prose, then in valid JSON
    vendor.server.reply_next(Reply(text="Sure! The title is Quarterly report."))
    vendor.server.reply_next(Reply(text='{"title": "Quarterly report"}'))
    scope = make_scope({vendor.name: vendor.provider})
    # when
    response = await rig.gateway.chat(scope, ask("Title this", response_format=CARD_FORMAT))
    # then the retry told the model what was wrong, and the parsed value is returned
    assert response.parsed == {"title": "Quarterly report"}
    assert vendor.calls == 2
    retry = vendor.server.last_request.body["messages"]
    assert retry[-2]["content"] == "Sure! The title is Quarterly report."
    assert retry[-1]["role"] == "user"
    assert "That reply is not valid: not JSON" in retry[-1]["content"]
    # and both attempts are paid for (the fake counts a word as a token: 6, then 3)
    assert response.usage.output_tokens == 6 + 3
    assert await rig.tokens_used(scope) == response.usage.total_tokens
    assert rig.record.status == "ok"
    await rig.assert_nothing_reserved(scope)


@pytest.mark.asyncio
async def test_twice_invalid_structured_replies_are_a_typed_error(
    rig: Rig, make_scope: MakeScope, vendor: Vendor
) -> None:
    # given a model that never matches the schema
    vendor.server.reply_next(Reply(text="not json"))
    vendor.server.reply_next(Reply(text='{"title": 5}'))
    scope = make_scope({vendor.name: vendor.provider})
    # when
    with pytest.raises(StructuredOutputError) as failed:
        await rig.gateway.chat(scope, ask("Title this", response_format=CARD_FORMAT))
    # then it names the mismatch; the tokens spent still count, and nothing stays reserved
    assert "5 is not of type 'string' at title" in failed.value.message
    assert vendor.calls == 2
    record = rig.record
    assert (record.status, record.error_code) == ("error", "structured_output_invalid")
    assert record.output_tokens == 2 + 2  # "not json", then '{"title": 5}': two words each
    assert await rig.tokens_used(scope) == record.input_tokens + record.output_tokens
    await rig.assert_nothing_reserved(scope)


@pytest.mark.asyncio
async def test_a_cached_structured_answer_still_carries_the_parsed_value(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor
) -> None:
    # given a structured answer in the cache
    openai_fake.server.reply_next(Reply(text='{"title": "Quarterly report"}'))
    scope = make_scope({"openai": openai_fake.provider})
    request = ask("Title this", response_format=CARD_FORMAT)
    first = await rig.gateway.chat(scope, request)
    # when
    again = await rig.gateway.chat(scope, request)
    # then
    assert (again.cached, openai_fake.calls) == (True, 1)
    assert again.parsed == first.parsed == {"title": "Quarterly report"}


# --- bad input -----------------------------------------------------------------------------

LONG = "word " * 200
INVALID_TOOL_SCHEMA = {"type": "nope"}
BAD_INPUT = [
    pytest.param(
        {"alias": "summarize"},
        UnknownAliasError,
        "alias",
        "Unknown model alias “summarize”",
        id="unknown-alias",
    ),
    pytest.param(
        {"messages": ()}, InvalidRequestError, "messages", "at least one message", id="no-messages"
    ),
    pytest.param(
        {"messages": (Message("robot", "hi"),)},  # type: ignore[arg-type]
        InvalidRequestError,
        "messages[0].role",
        "messages[0].role must be system, user, assistant or tool",
        id="bad-role",
    ),
    pytest.param(
        {"messages": (Message("user", None),)},  # type: ignore[arg-type]
        InvalidRequestError,
        "messages[0].content",
        "messages[0].content must be text",
        id="content-not-text",
    ),
    pytest.param(
        {"messages": (Message("user", "weather?"), Message("tool", "18C"))},
        InvalidRequestError,
        "messages[1].tool_call_id",
        "messages[1] is a tool result without tool_call_id",
        id="tool-without-call-id",
    ),
    pytest.param(
        {"messages": (Message("user", LONG),)},
        InvalidRequestError,
        "messages",
        "the limit is 50",
        id="oversized-input",
    ),
    pytest.param(
        {"response_format": ResponseFormat(type="json_schema", json_schema={"type": "objekt"})},
        InvalidRequestError,
        "response_format",
        "response_format.json_schema is not a valid JSON Schema",
        id="invalid-json-schema",
    ),
    pytest.param(
        {"response_format": ResponseFormat(type="json_schema", json_schema=None)},
        InvalidRequestError,
        "response_format",
        "response_format.json_schema must be a JSON Schema object",
        id="missing-json-schema",
    ),
    pytest.param(
        {"tools": (Tool("lookup", "Look something up", INVALID_TOOL_SCHEMA),)},
        InvalidRequestError,
        "tools",
        "tools[lookup].parameters is not a valid JSON Schema",
        id="invalid-tool-schema",
    ),
    pytest.param(
        {"max_tokens": 0}, InvalidRequestError, "max_tokens", "between 1 and 100", id="max-tokens-0"
    ),
    pytest.param(
        {"max_tokens": 101},
        InvalidRequestError,
        "max_tokens",
        "between 1 and 100",
        id="max-tokens-over-limit",
    ),
    pytest.param(
        {"temperature": 2.5},
        InvalidRequestError,
        "temperature",
        "temperature must be between 0 and 2",
        id="temperature-high",
    ),
    pytest.param(
        {"temperature": -0.1},
        InvalidRequestError,
        "temperature",
        "temperature must be between 0 and 2",
        id="temperature-negative",
    ),
]
BAD_INPUT_LIMITS = Limits(max_tokens=100, max_input_tokens=50)


def _bad(changes: dict[str, Any]) -> ChatRequest:
    return replace(ask("hello world"), **changes)


async def _answer(
    gateway: Gateway, scope: CallScope, request: ChatRequest, *, streamed: bool
) -> object:
    if not streamed:
        return await gateway.chat(scope, request)
    events: list[StreamEvent] = []
    stream: AsyncIterator[StreamEvent] = gateway.stream(scope, request)
    async for event in stream:
        events.append(event)
    return events


@pytest.mark.asyncio
@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize(("changes", "error", "field", "phrase"), BAD_INPUT)
async def test_bad_input_is_a_typed_error_with_no_reservation_and_no_success_logged(
    rig: Rig,
    make_scope: MakeScope,
    openai_fake: Vendor,
    streamed: bool,
    changes: dict[str, Any],
    error: type[InvalidRequestError],
    field: str | None,
    phrase: str,
) -> None:
    # given
    scope = make_scope({"openai": openai_fake.provider}, user_id=7, limits=BAD_INPUT_LIMITS)
    # when
    with pytest.raises(error) as refused:
        await _answer(rig.gateway, scope, _bad(changes), streamed=streamed)
    # then a clear, typed refusal before anything was reserved or sent
    assert type(refused.value) is error
    assert refused.value.field == field
    assert phrase in refused.value.message
    assert refused.value.status == (404 if error is UnknownAliasError else 400)
    assert openai_fake.calls == 0
    await rig.assert_nothing_reserved(scope)
    usage = await rig.usage(scope)
    assert (usage["workspace_day_tokens"].used, usage["user_day_requests"].used) == (0, 0)
    record = rig.record
    assert (record.status, record.error_code, record.cost_micros) == (
        "error",
        refused.value.code,
        0,
    )
    assert record.error_message == refused.value.message


@pytest.mark.asyncio
@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
async def test_a_key_the_provider_rejects_is_a_typed_error_with_nothing_reserved(
    rig: Rig, make_scope: MakeScope, vendor: Vendor, streamed: bool
) -> None:
    # given a provider whose server expects another key
    vendor.server.api_key = "sk-the-right-one"
    scope = make_scope({vendor.name: vendor.provider}, user_id=7)
    # when
    with pytest.raises(ProviderError) as rejected:
        await _answer(rig.gateway, scope, ask(), streamed=streamed)
    # then
    assert (rejected.value.kind, rejected.value.http_status) == ("auth", 401)
    assert "rejected the API key" in rejected.value.message
    assert KEY[-4:] not in rejected.value.message
    await rig.assert_nothing_reserved(scope)
    assert (rig.record.status, rig.record.error_code) == ("error", "provider_error")
    assert KEY[-4:] not in (rig.record.error_message or "")


def test_bad_input_never_leaves_a_call_log_claiming_success(acme: Workspace) -> None:
    # given the real sink: records queued in Redis, flushed by Django into llm_call_log
    token = uuid.uuid4().hex[:12]
    feature = f"bad-input-{token}"
    requests = [_bad(cast(dict[str, Any], p.values[0])) for p in BAD_INPUT] + [
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
