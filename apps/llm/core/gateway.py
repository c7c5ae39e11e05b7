"""The gateway: every model call runs this pipeline (DESIGN §4), in this order.

    before the call:  validate → resolve alias → safety pre-check
                      → together: reserve budget, look up the exact cache → use a cache hit
    the call:         primary, one retry, one fallback (only before the first streamed token)
    after the call:   meter cost → together: settle budget, store in cache, debit credits, record

The "after" stages run whatever happened — success, error, cancellation — so no reservation
outlives its call and every call leaves exactly one record. Stages grouped in `Together` don't
depend on each other and run concurrently; with the batching Redis client their commands share
one round trip, so a call costs two (DESIGN §4 order is kept: a hit is used only once the
reservation is granted). Plain Python: no Django here.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace

from .budget import BudgetStore, Scope
from .cache import ExactCache, cache_key
from .call import Call, ProviderClock, StreamState, measure
from .checks import check_chat_request, check_embed_request, json_error
from .context import (
    CallRecord,
    CallScope,
    CallSink,
    DebitPort,
    NoDebit,
    credit_charge,
    credit_scope,
    daily_scopes,
)
from .errors import (
    CREDIT_BALANCE,
    GatewayError,
    ProviderError,
    ProviderUnavailableError,
    StructuredOutputError,
)
from .pricing import PRICE_DATA_VERSION, NominalRate, cost_micros
from .providers.base import Embeddings, Provider, ProviderCall
from .resilience import Attempt, CircuitBreaker, attempt_plan
from .routing import Route
from .safety import injection_signals
from .types import (
    ChatRequest,
    ChatResponse,
    DoneEvent,
    EmbedRequest,
    EmbedResponse,
    ErrorEvent,
    Message,
    ProviderEvent,
    ProviderResponse,
    ProviderUsageEvent,
    StreamEvent,
    TokenEvent,
    ToolUseEvent,
    Usage,
)


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    reservation_ttl: int = 900  # seconds; the janitor releases reservations older than this
    retry_after_cap: float = 2.0  # a longer Retry-After skips the retry and goes to the fallback
    nominal_rate: NominalRate = field(default_factory=NominalRate)


Stage = Callable[[Call], Awaitable[None]]


class Together:
    """Stages that don't depend on each other, run concurrently. Each runs to its end even when
    another fails (a write must not be skipped because its neighbour failed); the first failure
    is raised afterwards."""

    def __init__(self, *stages: Stage):
        self.stages = stages
        self.__name__ = " + ".join(getattr(s, "__name__", "stage") for s in stages)

    async def __call__(self, call: Call) -> None:
        results = await asyncio.gather(
            *(stage(call) for stage in self.stages), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result


class Gateway:
    def __init__(
        self,
        *,
        budget: BudgetStore,
        cache: ExactCache,
        sink: CallSink,
        debit: DebitPort | None = None,
        breaker: CircuitBreaker | None = None,
        settings: GatewaySettings | None = None,
    ):
        self.budget = budget
        self.cache = cache
        self.sink = sink
        self.debit = debit or NoDebit()
        self.breaker = breaker or CircuitBreaker()
        self.settings = settings or GatewaySettings()
        # The pipeline, in order. Read these two lists to know what a call does.
        self.before_call: tuple[Stage, ...] = (
            self.validate,
            self.resolve_alias,
            self.safety_precheck,
            Together(self.reserve_budget, self.lookup_exact_cache),
            self.use_cache_hit,
        )
        self.after_call: tuple[Stage, ...] = (
            self.meter_cost,
            Together(
                self.settle_budget, self.store_exact_cache, self.debit_credits, self.record_call
            ),
        )

    # --- entry points -------------------------------------------------------------------

    async def chat(
        self, scope: CallScope, request: ChatRequest, *, clock: ProviderClock | None = None
    ) -> ChatResponse:
        """One answer. Raises a GatewayError subclass when there is none. `clock`, when given,
        accumulates the time spent waiting on providers."""
        call = Call(
            scope=scope,
            request=request,
            streaming=False,
            request_id=scope.request_id or uuid.uuid4().hex,
            clock=clock or ProviderClock(),
        )
        try:
            for stage in self.before_call:
                await stage(call)
            if call.response is None:
                call.response = await self._complete(call, call.request)
                call.usage = call.response.usage
            await self._structured_output(call)  # a cache hit validates too: it sets `parsed`
            call.status = "ok"
        except GatewayError as exc:
            call.error = exc
            raise
        except asyncio.CancelledError:
            call.status = "cancelled"
            raise
        finally:
            await asyncio.shield(self._after(call))
        return call.chat_response()  # after settling: it carries the metered cost

    async def stream(
        self, scope: CallScope, request: ChatRequest, *, clock: ProviderClock | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Typed events ending with `done`. Errors before the first event raise (so an edge can
        still answer 4xx/5xx); after it, they end the stream with `error` + `done{truncated}`.
        Closing the iterator closes the provider stream and settles the tokens produced.
        `clock`, when given, receives the time spent waiting for the provider's first event."""
        call = Call(
            scope=scope,
            request=request,
            streaming=True,
            request_id=scope.request_id or uuid.uuid4().hex,
            clock=clock or ProviderClock(),
        )
        events: AsyncGenerator[ProviderEvent, None] | None = None
        state = StreamState()
        try:
            for stage in self.before_call:
                await stage(call)
            if call.response is not None:  # cache hit: replay the stored answer
                call.status = "ok"
                if call.response.text:
                    yield TokenEvent(call.response.text)
                for tool_call in call.response.tool_calls:
                    yield ToolUseEvent(tool_call)
                await asyncio.shield(self._after(call))
                yield DoneEvent(
                    usage=call.usage,
                    reason=call.response.finish_reason,
                    response=call.chat_response(),
                )
                return
            events, state, event = await self._open_stream(call)
            # Committed to this route: from the first event on there is no fallback (DESIGN §4).
            while event is not None:
                if isinstance(event, ProviderUsageEvent):
                    state.absorb(event)
                else:
                    state.keep(event, call)
                    yield event
                event = await anext(events, None)
            call.usage = state.usage(call, finished=True)
            call.response = state.response(call, finish=None)
            call.status = "ok"
            await asyncio.shield(self._after(call))
            yield DoneEvent(
                usage=call.usage, reason=call.response.finish_reason, response=call.chat_response()
            )
        except ProviderError as exc:
            if events is None:
                call.error = exc
                raise
            # Mid-stream failure: say so, never end cleanly (DESIGN §4).
            assert call.route is not None
            call.attempts.append(f"{call.route.provider}/{call.route.model}: {exc.kind} mid-stream")
            call.status, call.error = "truncated", exc
            call.usage = state.usage(call, finished=False)
            call.response = state.response(call, finish="truncated")
            await asyncio.shield(self._after(call))
            yield ErrorEvent(
                message="The answer was cut off by a provider error.", code=exc.kind, retryable=True
            )
            yield DoneEvent(usage=call.usage, reason="truncated")
        except GatewayError as exc:
            call.error = exc
            raise
        except (GeneratorExit, asyncio.CancelledError):
            call.status = "cancelled"
            raise
        finally:
            if events is not None:
                await events.aclose()  # closes the provider's HTTP stream
                if call.status == "cancelled":
                    call.usage = state.usage(call, finished=False)
                    call.response = state.response(call, finish="cancelled")
            await asyncio.shield(self._after(call))

    async def embed(self, scope: CallScope, request: EmbedRequest) -> EmbedResponse:
        """Vectors for `request.inputs`, under the same budget, metering and records as chat.

        An embedding alias has one route and no fallback: vectors of two models must never
        share an index. A retryable failure is retried once on the same route.
        """
        call = Call(
            scope=scope,
            request=ChatRequest(
                alias=request.alias,
                messages=tuple(Message("user", text) for text in request.inputs),
                cache=False,
                metadata={"kind": "embed"},
            ),
            streaming=False,
            request_id=scope.request_id or uuid.uuid4().hex,
        )
        vectors: tuple[tuple[float, ...], ...] = ()
        try:
            call.input_estimate = check_embed_request(request, scope.limits)
            call.routes = scope.routing.resolve(
                request.alias, configured=frozenset(scope.providers), kind="embed"
            )
            call.route = call.routes.primary
            await self.reserve_budget(call)
            result = await self._embed_with_retry(call, request)
            vectors, call.usage = result.vectors, result.usage
            call.response = ProviderResponse(text="", usage=result.usage, model=result.model)
            call.status = "ok"
        except GatewayError as exc:
            call.error = exc
            raise
        except asyncio.CancelledError:
            call.status = "cancelled"
            raise
        finally:
            await asyncio.shield(self._after(call))
        assert call.route is not None
        assert call.response is not None
        return EmbedResponse(
            vectors=vectors,
            model=call.response.model,
            provider=call.route.provider,
            usage=call.usage,
            cost_micros=call.cost,
            request_id=call.request_id,
            trace_id=call.trace_id,
        )

    async def _embed_with_retry(self, call: Call, request: EmbedRequest) -> Embeddings:
        assert call.route is not None
        provider = self._provider(call, call.route)
        timeout = call.scope.timeout
        try:
            return await provider.embed(request.inputs, model=call.route.model, timeout=timeout)
        except ProviderError as exc:
            call.attempts.append(f"{call.route.provider}/{call.route.model}: {exc.kind}")
            if not exc.retryable:
                raise
        return await provider.embed(request.inputs, model=call.route.model, timeout=timeout)

    async def credit_needed(self, scope: CallScope, alias: str) -> int:
        """The least credit a call on `alias` reserves (no input, the alias's max_tokens): a
        balance below it refuses every such call, so a paywall can show before one is tried."""
        call = Call(scope=scope, request=ChatRequest(alias=alias, messages=()), streaming=False)
        await self.resolve_alias(call)
        return self._worst_charge(call)

    # --- before the call ----------------------------------------------------------------
    async def validate(self, call: Call) -> None:
        call.input_estimate = check_chat_request(call.request, call.scope.limits)

    async def resolve_alias(self, call: Call) -> None:
        scope = call.scope
        call.routes = scope.routing.resolve(
            call.request.alias, configured=frozenset(scope.providers)
        )
        call.max_tokens = call.request.max_tokens or min(
            scope.limits.max_tokens, call.routes.max_tokens
        )
        call.route = call.routes.primary

    async def safety_precheck(self, call: Call) -> None:
        call.signals = injection_signals(call.request.messages)

    async def reserve_budget(self, call: Call) -> None:
        # Named by the call id: the credit scope's pending charge is kept under it until the
        # ledger debit of this call (idempotency key `call:<call id>`) acknowledges it.
        call.reservation = await self.budget.reserve(
            self._scopes(call), ttl=self.settings.reservation_ttl, reservation_id=call.call_id
        )

    async def lookup_exact_cache(self, call: Call) -> None:
        if not call.request.cache:
            return
        assert call.route is not None
        call.key = cache_key(
            schema=call.scope.schema,
            provider=call.route.provider,
            model=call.route.model,
            request=call.request,
            max_tokens=call.max_tokens,
        )
        call.hit = await self.cache.get(call.key)

    async def use_cache_hit(self, call: Call) -> None:
        # Its own stage, after the reservation was granted: a denied call is not a cache hit.
        if call.hit is not None:
            call.response, call.cached, call.usage = call.hit, True, Usage()

    # --- the call -----------------------------------------------------------------------

    def _provider_call(self, call: Call, route: Route, request: ChatRequest) -> ProviderCall:
        return ProviderCall(
            request=request,
            model=route.model,
            max_tokens=call.max_tokens,
            timeout=request.timeout or call.scope.timeout,
        )

    def _provider(self, call: Call, route: Route) -> Provider:
        return call.scope.providers[route.provider]

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
            too_long = (
                exc.retry_after is not None and exc.retry_after > self.settings.retry_after_cap
            )
            if too_long or not self.breaker.allows(attempt.circuit):
                remaining.pop(0)  # go straight to the fallback
            elif exc.retry_after:
                await asyncio.sleep(exc.retry_after)
        if remaining and remaining[0].is_fallback:
            self.breaker.fallbacks[attempt.route.provider] += 1

    async def _complete(self, call: Call, request: ChatRequest) -> ProviderResponse:
        assert call.routes is not None
        plan = self._plan(call)
        while plan:
            attempt = plan.pop(0)
            self.breaker.begin(attempt.circuit)
            started = time.perf_counter()
            try:
                response = await self._provider(call, attempt.route).complete(
                    self._provider_call(call, attempt.route, request)
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

    async def _open_stream(
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
            events = self._provider(call, attempt.route).stream(
                self._provider_call(call, attempt.route, call.request)
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

    async def _structured_output(self, call: Call) -> None:
        """Validate JSON replies server-side; retry once with the validation error."""
        fmt = call.request.response_format
        if fmt is None or fmt.type == "text" or call.response is None or call.response.tool_calls:
            return
        error = json_error(call.response.text, fmt.json_schema)
        if error is None:
            call.parsed = json.loads(call.response.text)
            return
        retry = replace(
            call.request,
            messages=(
                *call.request.messages,
                Message(role="assistant", content=call.response.text),
                Message(
                    role="user",
                    content=f"That reply is not valid: {error}. Reply again with only a JSON value that satisfies the schema.",
                ),
            ),
        )
        call.response = await self._complete(call, retry)
        call.usage = call.usage + call.response.usage
        error = json_error(call.response.text, fmt.json_schema)
        if error is not None:
            raise StructuredOutputError(
                f"The model's reply did not match the requested JSON Schema: {error}"
            )
        call.parsed = json.loads(call.response.text)

    # --- after the call -----------------------------------------------------------------

    async def _after(self, call: Call) -> None:
        """Run the after-call stages once per call, however the call ended."""
        if call.settled:
            return
        call.settled = True
        for stage in self.after_call:
            await stage(call)

    async def meter_cost(self, call: Call) -> None:
        if call.route is None or call.cached:
            call.cost = 0
            return
        call.cost = cost_micros(
            call.route.provider, call.route.model, call.usage, nominal=self.settings.nominal_rate
        )

    async def settle_budget(self, call: Call) -> None:
        if call.reservation is None:
            return
        counted = call.status != "error" or call.usage.total_tokens > 0
        actual = {
            scope.name: measure(scope, call.usage, call.cost, counted)
            for scope in call.reservation.scopes
        }
        credit = call.scope.credit
        if credit is not None:
            # What the ledger will debit for this call: pending until that debit is posted.
            actual[CREDIT_BALANCE] = credit_charge(
                self._record(call), byok_fee=credit.byok_fee_micros
            )
        await self.budget.settle(call.reservation, actual)

    async def store_exact_cache(self, call: Call) -> None:
        # The key names the primary model: a fallback's answer stored under it would be
        # served for 24 h as the primary's, with another model's words.
        if (
            call.key
            and call.status == "ok"
            and not call.cached
            and not call.fallback_used
            and call.response is not None
        ):
            await self.cache.set(call.key, call.response)

    async def debit_credits(self, call: Call) -> None:
        # Every call goes to the port: it alone knows what (if anything) the ledger charges.
        await self.debit.debit(self._record(call))

    async def record_call(self, call: Call) -> None:
        await self.sink.record(self._record(call))

    # --- helpers ------------------------------------------------------------------------

    def _scopes(self, call: Call) -> list[Scope]:
        extra = list(call.scope.extra_scopes)
        if any(s.unit == "micro-dollars" for s in extra):  # price the worst case only if it counts
            worst = self._worst_cost(call)
            extra = [replace(s, amount=worst) if s.unit == "micro-dollars" else s for s in extra]
        scopes = [*daily_scopes(call.scope, tokens=call.input_estimate + call.max_tokens), *extra]
        credit = credit_scope(call.scope, amount=self._worst_charge(call))
        return scopes if credit is None else [*scopes, credit]

    def _worst_cost(self, call: Call) -> int:
        assert call.routes is not None
        worst = Usage(input_tokens=call.input_estimate, output_tokens=call.max_tokens)
        return max(
            cost_micros(r.provider, r.model, worst, nominal=self.settings.nominal_rate)
            for r in call.routes.routes
        )

    def _worst_charge(self, call: Call) -> int:
        """The most this call can take from the credit balance, over primary and fallback: a
        route on the workspace's own key is charged the BYOK fee instead of its cost."""
        credit = call.scope.credit
        if credit is None:
            return 0
        assert call.routes is not None
        worst = Usage(input_tokens=call.input_estimate, output_tokens=call.max_tokens)
        return max(
            credit.byok_fee_micros
            if r.provider in call.scope.byok
            else cost_micros(r.provider, r.model, worst, nominal=self.settings.nominal_rate)
            for r in call.routes.routes
        )

    def _record(self, call: Call) -> CallRecord:
        """The call's record, built once: debit and record_call run together and share it."""
        if call.record is None:
            call.record = self._build_record(call)
        return call.record

    def _build_record(self, call: Call) -> CallRecord:
        route = call.route
        error = call.error
        request = call.request
        return CallRecord(
            call_id=call.call_id,
            request_id=call.request_id,
            trace_id=call.trace_id,
            schema=call.scope.schema,
            workspace_id=call.scope.workspace_id,
            actor_type=call.scope.actor.type,
            actor_id=call.scope.actor.id,
            feature=call.scope.feature,
            alias=request.alias,
            provider=route.provider if route else "",
            model=(
                call.response.model
                if call.response and call.response.model
                else route.model
                if route
                else ""
            ),
            status=call.status,
            input_tokens=call.usage.input_tokens,
            output_tokens=call.usage.output_tokens,
            cache_read_tokens=call.usage.cache_read_tokens,
            cache_write_tokens=call.usage.cache_write_tokens,
            cost_micros=call.cost,
            cached=call.cached,
            fallback_used=call.fallback_used,
            byok=bool(route and route.provider in call.scope.byok),
            offline=call.offline,
            duration_ms=(time.perf_counter() - call.started) * 1000,
            started_at=call.started_at,
            finish_reason=call.response.finish_reason if call.response else None,
            error_code=error.code if error else None,
            error_message=error.message if error else None,
            prompt_name=request.prompt_name,
            prompt_version=request.prompt_version,
            price_version=PRICE_DATA_VERSION,
            attempts=tuple(call.attempts),
            trace={
                "messages": [asdict(m) for m in request.messages],
                "tools": [asdict(t) for t in request.tools],
                "response_format": asdict(request.response_format)
                if request.response_format
                else None,
                "params": {
                    "max_tokens": call.max_tokens,
                    "temperature": request.temperature,
                    "stream": call.streaming,
                },
                "response": call.response.text if call.response else None,
                "tool_calls": [asdict(c) for c in call.response.tool_calls]
                if call.response
                else [],
                "thinking": call.response.thinking if call.response else "",
                "safety_signals": call.signals,
                "metadata": dict(request.metadata),
            },
        )
