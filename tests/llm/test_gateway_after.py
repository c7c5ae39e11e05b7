"""The gateway's after-call stages on real Redis against the fake vendors: the budget is settled
whatever happened (success, provider error, every route failing, cancellation, a dead process's
reservation released by the janitor), and the call's cost metered (genai-prices, the nominal
rate of the offline model)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal

import genai_prices
import pytest

from apps.llm.core.context import daily_scopes
from apps.llm.core.errors import (
    ProviderError,
    ProviderUnavailableError,
)
from apps.llm.core.gateway import GatewaySettings
from apps.llm.core.pricing import PRICE_DATA_VERSION, NominalRate
from apps.llm.core.providers.local import LocalProvider
from apps.llm.core.types import Usage
from tests.fakes import Fault, Reply

from .conftest import MODELS, MakeRig, MakeScope, Rig, Vendor, ask, both
from .gateway_cases import until

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
    await until(lambda: openai_fake.calls == 1)
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
