"""The gateway: every model call runs this pipeline (DESIGN §4), in this order.

    before the call:  validate → resolve alias → safety pre-check → reserve budget → exact cache
    the call:         primary, one retry, one fallback (only before the first streamed token)
    after the call:   meter cost → settle budget → store in cache → debit credits → record

The "after" stages run whatever happened — success, error, cancellation — so no reservation
outlives its call and every call leaves exactly one record. Plain Python: no Django here.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import jsonschema

from .budget import BudgetStore, Reservation, Scope
from .cache import ExactCache, cache_key
from .context import CallRecord, CallScope, CallSink, DebitPort, NoDebit, daily_scopes
from .errors import (
    GatewayError,
    InvalidRequestError,
    ProviderError,
    ProviderUnavailableError,
    StructuredOutputError,
)
from .pricing import PRICE_DATA_VERSION, NominalRate, cost_micros
from .providers.base import Provider, ProviderCall
from .resilience import Attempt, CircuitBreaker, attempt_plan
from .routing import ResolvedRoutes, Route
from .safety import injection_signals
from .tokens import count_message_tokens, count_tokens
from .types import (
    ChatRequest,
    ChatResponse,
    DoneEvent,
    ErrorEvent,
    Message,
    ProviderEvent,
    ProviderResponse,
    ProviderUsageEvent,
    StreamEvent,
    ThinkingEvent,
    TokenEvent,
    ToolCall,
    ToolUseEvent,
    Usage,
)

MAX_TOKENS_CEILING = 65_536


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    reservation_ttl: int = 900  # seconds; the janitor releases reservations older than this
    retry_after_cap: float = 2.0  # a longer Retry-After skips the retry and goes to the fallback
    nominal_rate: NominalRate = field(default_factory=NominalRate)


@dataclass
class _Call:
    """The state of one call as it moves through the stages."""

    scope: CallScope
    request: ChatRequest
    streaming: bool
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    trace_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    request_id: str = ""
    started: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)
    routes: ResolvedRoutes | None = None
    max_tokens: int = 0
    input_estimate: int = 0
    reservation: Reservation | None = None
    key: str | None = None
    response: ProviderResponse | None = None
    route: Route | None = None
    fallback_used: bool = False
    cached: bool = False
    attempts: list[str] = field(default_factory=list)
    status: str = "error"
    error: GatewayError | None = None
    usage: Usage = field(default_factory=Usage)
    cost: int = 0
    parsed: Any = None
    signals: list[str] = field(default_factory=list)
    settled: bool = False

    @property
    def offline(self) -> bool:
        return self.route is not None and self.route.provider == "local"

    def chat_response(self) -> ChatResponse:
        assert self.response is not None
        assert self.routes is not None
        assert self.route is not None
        return ChatResponse(
            text=self.response.text,
            tool_calls=self.response.tool_calls,
            usage=self.usage,
            alias=self.routes.alias,
            provider=self.route.provider,
            model=self.response.model or self.route.model,
            finish_reason=self.response.finish_reason,
            cost_micros=self.cost,
            cached=self.cached,
            fallback_used=self.fallback_used,
            request_id=self.request_id,
            trace_id=self.trace_id,
            duration_ms=(time.perf_counter() - self.started) * 1000,
            offline=self.offline,
            parsed=self.parsed,
        )


@dataclass
class _StreamState:
    """What a stream produced so far: enough to settle exactly, however it ends."""

    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    reported: Usage = field(default_factory=Usage)
    finish: str | None = None
    model: str = ""

    def absorb(self, event: ProviderUsageEvent) -> None:
        self.reported = _max_usage(self.reported, event.usage)
        self.finish = event.finish_reason or self.finish
        self.model = event.model or self.model

    def keep(self, event: Any, call: _Call) -> None:
        if isinstance(event, TokenEvent):
            self.text.append(event.text)
        elif isinstance(event, ThinkingEvent):
            self.thinking.append(event.text)
        elif isinstance(event, ToolUseEvent):
            self.tool_calls.append(event.call)

    def usage(self, call: _Call, *, finished: bool) -> Usage:
        """The provider's final usage when it sent one; otherwise its input count (or our
        estimate) and the tokens of the text actually produced."""
        if finished and self.reported.output_tokens:
            return self.reported
        produced = count_tokens("".join(self.text)) + sum(
            count_tokens(json.dumps(c.arguments)) for c in self.tool_calls
        )
        return replace(
            self.reported,
            input_tokens=self.reported.input_tokens or call.input_estimate,
            output_tokens=max(self.reported.output_tokens, produced),
        )

    def response(self, call: _Call, *, finish: str | None) -> ProviderResponse:
        assert call.route is not None
        reason = finish or self.finish or ("tool_calls" if self.tool_calls else "stop")
        return ProviderResponse(
            text="".join(self.text),
            usage=call.usage,
            model=self.model or call.route.model,
            finish_reason=reason,  # type: ignore[arg-type]
            tool_calls=tuple(self.tool_calls),
            thinking="".join(self.thinking),
        )


Stage = Callable[[_Call], Awaitable[None]]


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
            self.reserve_budget,
            self.lookup_exact_cache,
        )
        self.after_call: tuple[Stage, ...] = (
            self.meter_cost,
            self.settle_budget,
            self.store_exact_cache,
            self.debit_credits,
            self.record_call,
        )

    # --- entry points -------------------------------------------------------------------

    async def chat(self, scope: CallScope, request: ChatRequest) -> ChatResponse:
        """One answer. Raises a GatewayError subclass when there is none."""
        call = _Call(
            scope=scope,
            request=request,
            streaming=False,
            request_id=scope.request_id or uuid.uuid4().hex,
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

    async def stream(self, scope: CallScope, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Typed events ending with `done`. Errors before the first event raise (so an edge can
        still answer 4xx/5xx); after it, they end the stream with `error` + `done{truncated}`.
        Closing the iterator closes the provider stream and settles the tokens produced."""
        call = _Call(
            scope=scope,
            request=request,
            streaming=True,
            request_id=scope.request_id or uuid.uuid4().hex,
        )
        events: AsyncGenerator[ProviderEvent, None] | None = None
        state = _StreamState()
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

    # --- before the call ----------------------------------------------------------------

    async def validate(self, call: _Call) -> None:
        request, limits = call.request, call.scope.limits
        if not request.messages:
            raise InvalidRequestError("Send at least one message.", field="messages")
        for index, message in enumerate(request.messages):
            if message.role not in ("system", "user", "assistant", "tool"):
                raise InvalidRequestError(
                    f"messages[{index}].role must be system, user, assistant or tool.",
                    field=f"messages[{index}].role",
                )
            if not isinstance(message.content, str):
                raise InvalidRequestError(
                    f"messages[{index}].content must be text.", field=f"messages[{index}].content"
                )
            if message.role == "tool" and not message.tool_call_id:
                raise InvalidRequestError(
                    f"messages[{index}] is a tool result without tool_call_id.",
                    field=f"messages[{index}].tool_call_id",
                )
        if request.max_tokens is not None and not 1 <= request.max_tokens <= min(
            limits.max_tokens, MAX_TOKENS_CEILING
        ):
            raise InvalidRequestError(
                f"max_tokens must be between 1 and {min(limits.max_tokens, MAX_TOKENS_CEILING)}.",
                field="max_tokens",
            )
        if request.temperature is not None and not 0 <= request.temperature <= 2:
            raise InvalidRequestError("temperature must be between 0 and 2.", field="temperature")
        fmt = request.response_format
        if fmt is not None and fmt.type == "json_schema":
            if not isinstance(fmt.json_schema, dict):
                raise InvalidRequestError(
                    "response_format.json_schema must be a JSON Schema object.",
                    field="response_format",
                )
            try:
                jsonschema.Draft202012Validator.check_schema(fmt.json_schema)
            except jsonschema.SchemaError as exc:
                raise InvalidRequestError(
                    f"response_format.json_schema is not a valid JSON Schema: {exc.message}",
                    field="response_format",
                ) from exc
        for tool in request.tools:
            try:
                jsonschema.Draft202012Validator.check_schema(tool.parameters)
            except jsonschema.SchemaError as exc:
                raise InvalidRequestError(
                    f"tools[{tool.name}].parameters is not a valid JSON Schema: {exc.message}",
                    field="tools",
                ) from exc
        call.input_estimate = count_message_tokens(request.messages, request.tools)
        if call.input_estimate > limits.max_input_tokens:
            raise InvalidRequestError(
                f"The input is about {call.input_estimate} tokens; the limit is {limits.max_input_tokens}.",
                field="messages",
            )

    async def resolve_alias(self, call: _Call) -> None:
        scope = call.scope
        call.routes = scope.routing.resolve(
            call.request.alias, configured=frozenset(scope.providers)
        )
        call.max_tokens = call.request.max_tokens or min(
            scope.limits.max_tokens, call.routes.max_tokens
        )
        call.route = call.routes.primary

    async def safety_precheck(self, call: _Call) -> None:
        call.signals = injection_signals(call.request.messages)

    async def reserve_budget(self, call: _Call) -> None:
        call.reservation = await self.budget.reserve(
            self._scopes(call), ttl=self.settings.reservation_ttl
        )

    async def lookup_exact_cache(self, call: _Call) -> None:
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
        hit = await self.cache.get(call.key)
        if hit is not None:
            call.response, call.cached, call.usage = hit, True, Usage()

    # --- the call -----------------------------------------------------------------------

    def _provider_call(self, call: _Call, route: Route, request: ChatRequest) -> ProviderCall:
        return ProviderCall(
            request=request,
            model=route.model,
            max_tokens=call.max_tokens,
            timeout=request.timeout or call.scope.timeout,
        )

    def _provider(self, call: _Call, route: Route) -> Provider:
        return call.scope.providers[route.provider]

    def _plan(self, call: _Call) -> list[Attempt]:
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
        self, call: _Call, attempt: Attempt, exc: ProviderError, remaining: list[Attempt]
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

    async def _complete(self, call: _Call, request: ChatRequest) -> ProviderResponse:
        assert call.routes is not None
        plan = self._plan(call)
        while plan:
            attempt = plan.pop(0)
            self.breaker.begin(attempt.circuit)
            try:
                response = await self._provider(call, attempt.route).complete(
                    self._provider_call(call, attempt.route, request)
                )
            except ProviderError as exc:
                await self._on_failure(call, attempt, exc, plan)
                continue
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
        self, call: _Call
    ) -> tuple[AsyncGenerator[ProviderEvent, None], _StreamState, ProviderEvent | None]:
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
            state = _StreamState()
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
            self.breaker.record_success(attempt.circuit)
            call.route, call.fallback_used = attempt.route, attempt.is_fallback
            return events, state, first
        raise ProviderUnavailableError(
            f"No provider could answer “{call.routes.alias}” right now; try again shortly.",
            attempts=tuple(call.attempts),
        )

    async def _structured_output(self, call: _Call) -> None:
        """Validate JSON replies server-side; retry once with the validation error."""
        fmt = call.request.response_format
        if fmt is None or fmt.type == "text" or call.response is None or call.response.tool_calls:
            return
        error = _json_error(call.response.text, fmt.json_schema)
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
        error = _json_error(call.response.text, fmt.json_schema)
        if error is not None:
            raise StructuredOutputError(
                f"The model's reply did not match the requested JSON Schema: {error}"
            )
        call.parsed = json.loads(call.response.text)

    # --- after the call -----------------------------------------------------------------

    async def _after(self, call: _Call) -> None:
        """Run the after-call stages once per call, however the call ended."""
        if call.settled:
            return
        call.settled = True
        for stage in self.after_call:
            await stage(call)

    async def meter_cost(self, call: _Call) -> None:
        if call.route is None or call.cached:
            call.cost = 0
            return
        call.cost = cost_micros(
            call.route.provider, call.route.model, call.usage, nominal=self.settings.nominal_rate
        )

    async def settle_budget(self, call: _Call) -> None:
        if call.reservation is None:
            return
        counted = call.status != "error" or call.usage.total_tokens > 0
        actual = {
            scope.name: _measure(scope, call.usage, call.cost, counted)
            for scope in call.reservation.scopes
        }
        await self.budget.settle(call.reservation, actual)

    async def store_exact_cache(self, call: _Call) -> None:
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

    async def debit_credits(self, call: _Call) -> None:
        if call.status != "error" or call.cost:
            await self.debit.debit(self._record(call))

    async def record_call(self, call: _Call) -> None:
        await self.sink.record(self._record(call))

    # --- helpers ------------------------------------------------------------------------

    def _scopes(self, call: _Call) -> list[Scope]:
        extra = list(call.scope.extra_scopes)
        if any(s.unit == "micro-dollars" for s in extra):  # price the worst case only if it counts
            worst = self._worst_cost(call)
            extra = [replace(s, amount=worst) if s.unit == "micro-dollars" else s for s in extra]
        return [*daily_scopes(call.scope, tokens=call.input_estimate + call.max_tokens), *extra]

    def _worst_cost(self, call: _Call) -> int:
        assert call.routes is not None
        worst = Usage(input_tokens=call.input_estimate, output_tokens=call.max_tokens)
        return max(
            cost_micros(r.provider, r.model, worst, nominal=self.settings.nominal_rate)
            for r in call.routes.routes
        )

    def _record(self, call: _Call) -> CallRecord:
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


def _measure(scope: Scope, usage: Usage, cost: int, counted: bool) -> int:
    if scope.unit == "tokens":
        return usage.total_tokens
    if scope.unit == "requests":
        return 1 if counted else 0
    return cost


def _max_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        *(
            max(x, y)
            for x, y in zip(
                (a.input_tokens, a.output_tokens, a.cache_read_tokens, a.cache_write_tokens),
                (b.input_tokens, b.output_tokens, b.cache_read_tokens, b.cache_write_tokens),
                strict=True,
            )
        )
    )


def _json_error(text: str, schema: dict[str, Any] | None) -> str | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg} at position {exc.pos})"
    if schema is None:
        return None if isinstance(value, dict) else "expected a JSON object"
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(value)
    )
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    return f"{error.message} at {where}"
