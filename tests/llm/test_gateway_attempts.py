"""The call itself, through the gateway against the fake vendors: retry, fallback and the circuit
breaker (on a clock moved by hand), Retry-After, and a key the provider rejects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from apps.llm.core.errors import ProviderError
from apps.llm.core.resilience import CircuitBreaker
from tests.fakes import Fault

from .conftest import KEY, MODELS, MakeRig, MakeScope, Names, Rig, Vendor, ask, both
from .gateway_cases import ManualClock, answer, until

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
    # given the primary's circuit opened on a failure, and its cool-down (30 s) has passed
    clock = ManualClock()
    rig = make_rig(breaker=CircuitBreaker(threshold=1, cooldown=30, clock=clock))
    primary, fallback = pair
    primary.server.fail_next(Fault.server_error())
    primary.server.fail_next(Fault.timeout(hold=3.0))
    scope = make_scope(**both(pair), timeout=0.4)
    await rig.gateway.chat(scope, ask("opens the circuit"))
    assert (primary.calls, fallback.calls) == (1, 1)  # no retry into a circuit that just opened
    clock.advance(29.9)
    assert rig.breaker.is_open(primary.name)
    clock.advance(0.1)
    # when a trial call is stuck on the primary and more calls arrive meanwhile
    trial = asyncio.create_task(rig.gateway.chat(scope, ask("the trial")))
    await until(lambda: primary.calls == 2)
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
        await answer(rig.gateway, scope, ask(), streamed=streamed)
    # then
    assert (rejected.value.kind, rejected.value.http_status) == ("auth", 401)
    assert "rejected the API key" in rejected.value.message
    assert KEY[-4:] not in rejected.value.message
    await rig.assert_nothing_reserved(scope)
    assert (rig.record.status, rig.record.error_code) == ("error", "provider_error")
    assert KEY[-4:] not in (rig.record.error_message or "")
