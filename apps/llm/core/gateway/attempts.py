"""The call itself: the attempt plan — primary, one retry, one fallback — run against the
providers, with the circuit breaker told of every outcome. The plan and the breaker are in
`resilience`; this is where they meet a call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

from ..call import Call, StreamState
from ..errors import ProviderError, ProviderUnavailableError
from ..providers.base import Embeddings, Provider, ProviderCall
from ..resilience import Attempt, CircuitBreaker, attempt_plan
from ..routing import Route
from ..types import ChatRequest, EmbedRequest, ProviderEvent, ProviderResponse, ProviderUsageEvent


class Attempts:
    """Runs a call's attempt plan; keeps only the breaker and the longest Retry-After it waits."""

    def __init__(self, breaker: CircuitBreaker, *, retry_after_cap: float):
        self.breaker = breaker
        self.retry_after_cap = retry_after_cap

    async def complete(self, call: Call, request: ChatRequest) -> ProviderResponse:
        assert call.routes is not None
        plan = self._plan(call)
        while plan:
            attempt = plan.pop(0)
            self.breaker.begin(attempt.circuit)
            started = time.perf_counter()
            try:
                response = await _provider(call, attempt.route).complete(
                    _provider_call(call, attempt.route, request)
                )
            except ProviderError as exc:
                await self._on_failure(call, attempt, exc, plan)
                continue
            finally:
                call.clock.ms += (time.perf_counter() - started) * 1000
            self.breaker.record_success(attempt.circuit)
            call.route, call.fallback_used = (
                attempt.route,
                call.fallback_used or attempt.is_fallback,
            )
            return response
        raise ProviderUnavailableError(
            f"No provider could answer “{call.routes.alias}” right now; try again shortly.",
            attempts=tuple(call.attempts),
        )

    async def open_stream(
        self, call: Call
    ) -> tuple[AsyncGenerator[ProviderEvent, None], StreamState, ProviderEvent | None]:
        """Try the attempt plan until a provider yields its first event for the caller; return
        its stream, the usage it reported before that event, and the event. Retries and fallback
        happen only here, before anything reached the caller. Usage reports are not such an
        event: Anthropic sends one before any token, and a failure right after it must still
        fall back."""
        assert call.routes is not None
        plan = self._plan(call)
        while plan:
            attempt = plan.pop(0)
            self.breaker.begin(attempt.circuit)
            events = _provider(call, attempt.route).stream(
                _provider_call(call, attempt.route, call.request)
            )
            state = StreamState()
            started = time.perf_counter()
            try:
                first = await anext(events, None)
                while isinstance(first, ProviderUsageEvent):
                    state.absorb(first)
                    first = await anext(events, None)
            except ProviderError as exc:
                await events.aclose()
                await self._on_failure(call, attempt, exc, plan)
                continue
            except BaseException:
                await events.aclose()
                raise
            finally:
                call.clock.ms += (time.perf_counter() - started) * 1000
            self.breaker.record_success(attempt.circuit)
            call.route, call.fallback_used = attempt.route, attempt.is_fallback
            return events, state, first
        raise ProviderUnavailableError(
            f"No provider could answer “{call.routes.alias}” right now; try again shortly.",
            attempts=tuple(call.attempts),
        )

    async def embed(self, call: Call, request: EmbedRequest) -> Embeddings:
        """The vectors from the call's one route; a retryable failure is retried once on that
        route, never on another (see `Gateway.embed`)."""
        assert call.route is not None
        provider = _provider(call, call.route)
        timeout = call.scope.timeout
        try:
            return await provider.embed(request.inputs, model=call.route.model, timeout=timeout)
        except ProviderError as exc:
            call.attempts.append(f"{call.route.provider}/{call.route.model}: {exc.kind}")
            if not exc.retryable:
                raise
        return await provider.embed(request.inputs, model=call.route.model, timeout=timeout)

    def _plan(self, call: Call) -> list[Attempt]:
        assert call.routes is not None
        scope = call.scope

        def circuit(route: Route) -> str:
            # A workspace's own key fails on its own (its rate limit, its quota): its circuit
            # must not shed the platform's key for every other workspace.
            if route.provider in scope.byok:
                return f"{route.provider}:{scope.schema}"
            return route.provider

        return attempt_plan(call.routes.routes, self.breaker, circuit=circuit)

    async def _on_failure(
        self, call: Call, attempt: Attempt, exc: ProviderError, remaining: list[Attempt]
    ) -> None:
        """Record a failed attempt; raise when nothing may follow it; wait out a short
        Retry-After, or skip the retry when the wait is too long or the circuit just opened."""
        call.attempts.append(f"{attempt.route.provider}/{attempt.route.model}: {exc.kind}")
        if not exc.retryable:
            raise exc
        self.breaker.record_failure(attempt.circuit)
        nxt = remaining[0] if remaining else None
        if nxt is not None and nxt.is_retry:
            too_long = exc.retry_after is not None and exc.retry_after > self.retry_after_cap
            if too_long or not self.breaker.allows(attempt.circuit):
                remaining.pop(0)  # go straight to the fallback
            elif exc.retry_after:
                await asyncio.sleep(exc.retry_after)
        if remaining and remaining[0].is_fallback:
            self.breaker.fallbacks[attempt.route.provider] += 1


def _provider_call(call: Call, route: Route, request: ChatRequest) -> ProviderCall:
    return ProviderCall(
        request=request,
        model=route.model,
        max_tokens=call.max_tokens,
        timeout=request.timeout or call.scope.timeout,
    )


def _provider(call: Call, route: Route) -> Provider:
    return call.scope.providers[route.provider]
