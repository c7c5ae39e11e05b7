"""The `Gateway`: its ports, the pipeline as lists of stages, and the entry points that run
them. Each entry point runs the after-call stages on every way out — success, error,
cancellation — so no reservation outlives its call and every call leaves exactly one record."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from ..budget import BudgetStore
from ..cache import ExactCache
from ..call import Call, ProviderClock
from ..context import CallScope, CallSink, DebitPort, NoDebit
from ..errors import GatewayError
from ..pricing import NominalRate
from ..resilience import CircuitBreaker
from ..types import (
    ChatRequest,
    ChatResponse,
    EmbedRequest,
    EmbedResponse,
    Message,
    ProviderResponse,
    StreamEvent,
)
from .after import Settlement
from .attempts import Attempts
from .before import (
    Admission,
    resolve_alias,
    resolve_embed_alias,
    safety_precheck,
    use_cache_hit,
    validate,
    validate_embed,
    worst_charge,
)
from .durable import DurableWrites, FallbackOutbox, NoFallback
from .stages import Stage, Together, run_before
from .streaming import stream_events
from .structured import structured_output


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    reservation_ttl: int = 900  # seconds; the janitor releases reservations older than this
    retry_after_cap: float = 2.0  # a longer Retry-After skips the retry and goes to the fallback
    nominal_rate: NominalRate = field(default_factory=NominalRate)


class Gateway:
    def __init__(
        self,
        *,
        budget: BudgetStore,
        cache: ExactCache,
        sink: CallSink,
        debit: DebitPort | None = None,
        outbox: FallbackOutbox | None = None,
        breaker: CircuitBreaker | None = None,
        settings: GatewaySettings | None = None,
    ):
        self.budget = budget
        self.cache = cache
        self.sink = sink
        self.debit = debit or NoDebit()
        self.breaker = breaker or CircuitBreaker()
        self.settings = settings or GatewaySettings()
        nominal = self.settings.nominal_rate
        self.admission = Admission(
            budget=budget,
            cache=cache,
            reservation_ttl=self.settings.reservation_ttl,
            nominal=nominal,
        )
        self.attempts = Attempts(self.breaker, retry_after_cap=self.settings.retry_after_cap)
        # The after-call writes, durable: retried, else kept in `outbox` and replayed later.
        self.durable = DurableWrites(
            budget=budget, debit=self.debit, sink=sink, outbox=outbox or NoFallback()
        )
        settlement = Settlement(cache=cache, durable=self.durable, nominal=nominal)
        # The pipeline, in order. Read these lists to know what a call does.
        self.before_call: tuple[Stage, ...] = (
            validate,
            resolve_alias,
            safety_precheck,
            Together(self.admission.reserve_budget, self.admission.lookup_exact_cache),
            use_cache_hit,
        )
        # Embeddings: no safety pre-check (nothing is generated) and no exact cache (callers
        # index vectors once); the same reservation and the same after-call stages.
        self.before_embed: tuple[Stage, ...] = (
            validate_embed,
            resolve_embed_alias,
            self.admission.reserve_budget,
        )
        self.after_call: tuple[Stage, ...] = (
            settlement.meter_cost,
            Together(
                settlement.settle_budget,
                settlement.store_exact_cache,
                settlement.debit_credits,
                settlement.record_call,
            ),
        )

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
        async with self._settling(call):
            await run_before(self.before_call, call)
            if call.response is None:
                call.response = await self.attempts.complete(call, call.request)
                call.usage = call.response.usage
            # A cache hit is validated too: that sets `parsed`.
            await structured_output(call, self.attempts)
        return call.chat_response()  # after settling: it carries the metered cost

    def stream(
        self, scope: CallScope, request: ChatRequest, *, clock: ProviderClock | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Typed events ending with `done`. Errors before the first event raise (so an edge can
        still answer 4xx/5xx); after it, they end the stream with `error` + `done{truncated}`.
        Closing the iterator closes the provider stream and settles the tokens produced.
        `clock`, when given, receives the time spent waiting for the provider's first event."""
        return stream_events(
            scope,
            request,
            clock=clock,
            before_call=self.before_call,
            attempts=self.attempts,
            after=self._after,
        )

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
            embed=request,
            request_id=scope.request_id or uuid.uuid4().hex,
        )
        vectors: tuple[tuple[float, ...], ...] = ()
        async with self._settling(call):
            await run_before(self.before_embed, call)
            result = await self.attempts.embed(call, request)
            vectors, call.usage = result.vectors, result.usage
            call.response = ProviderResponse(text="", usage=result.usage, model=result.model)
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

    async def credit_needed(self, scope: CallScope, alias: str) -> int:
        """The least credit a call on `alias` reserves (no input, the alias's max_tokens): a
        balance below it refuses every such call, so a paywall can show before one is tried."""
        call = Call(scope=scope, request=ChatRequest(alias=alias, messages=()), streaming=False)
        await resolve_alias(call)
        return worst_charge(call, nominal=self.settings.nominal_rate)

    @asynccontextmanager
    async def _settling(self, call: Call) -> AsyncIterator[None]:
        """Run the body as the call: it succeeded if the body returns, failed with the
        GatewayError it raises, was cancelled on CancelledError; the after-call stages run on
        every way out, shielded so a cancellation cannot skip the settlement."""
        try:
            yield
            call.status = "ok"
        except GatewayError as exc:
            call.error = exc
            raise
        except asyncio.CancelledError:
            call.status = "cancelled"
            raise
        finally:
            await asyncio.shield(self._after(call))

    async def _after(self, call: Call) -> None:
        """Run the after-call stages once per call, however the call ended."""
        if call.settled:
            return
        call.settled = True
        for stage in self.after_call:
            await stage(call)
