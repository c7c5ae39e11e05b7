"""The state of one gateway call as it moves through the pipeline's stages."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from .budget import Reservation, Scope
from .context import CallRecord, CallScope
from .errors import GatewayError
from .routing import ResolvedRoutes, Route
from .tokens import count_tokens
from .types import (
    ChatRequest,
    ChatResponse,
    EmbedRequest,
    ProviderResponse,
    ProviderUsageEvent,
    ThinkingEvent,
    TokenEvent,
    ToolCall,
    ToolUseEvent,
    Usage,
)


@dataclass
class ProviderClock:
    """Time spent waiting on providers during one call, for edges that report their own
    overhead (the HTTP API's x-aisaas-overhead-ms). Streaming: the time to the first event."""

    ms: float = 0.0


@dataclass
class Call:
    """The state of one call as it moves through the stages."""

    scope: CallScope
    request: ChatRequest
    streaming: bool
    embed: EmbedRequest | None = None  # an embedding call's texts (also in `request.messages`)
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
    hit: ProviderResponse | None = None  # the exact cache's entry, used once the budget allows
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
    record: CallRecord | None = None  # built once, for the ledger port and the record sink
    clock: ProviderClock = field(default_factory=ProviderClock)

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
class StreamState:
    """What a stream produced so far: enough to settle exactly, however it ends."""

    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    reported: Usage = field(default_factory=Usage)
    finish: str | None = None
    model: str = ""

    def absorb(self, event: ProviderUsageEvent) -> None:
        self.reported = max_usage(self.reported, event.usage)
        self.finish = event.finish_reason or self.finish
        self.model = event.model or self.model

    def keep(self, event: Any, call: Call) -> None:
        if isinstance(event, TokenEvent):
            self.text.append(event.text)
        elif isinstance(event, ThinkingEvent):
            self.thinking.append(event.text)
        elif isinstance(event, ToolUseEvent):
            self.tool_calls.append(event.call)

    def usage(self, call: Call, *, finished: bool) -> Usage:
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

    def response(self, call: Call, *, finish: str | None) -> ProviderResponse:
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


def measure(scope: Scope, usage: Usage, cost: int, counted: bool) -> int:
    if scope.unit == "tokens":
        return usage.total_tokens
    if scope.unit == "requests":
        return 1 if counted else 0
    return cost


def max_usage(a: Usage, b: Usage) -> Usage:
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
