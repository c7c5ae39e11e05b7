"""Typed requests, responses and stream events of the gateway. Plain Python: no Django."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
ActorType = Literal["user", "agent", "system", "api_key"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to run a tool, with parsed JSON arguments."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. `tool_calls` on assistant messages; `tool_call_id` on tool results."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call: name, description and a JSON Schema for its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """Structured output: `json_schema` set → the reply must validate against it; otherwise
    `type="json_object"` asks for any JSON object."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None
    name: str = "response"


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What business code asks for. `alias` names a route (`fast`, `smart`, …), never a model."""

    alias: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None  # "auto" | "none" | "required" | a tool name
    response_format: ResponseFormat | None = None
    stop: tuple[str, ...] = ()
    # Bypass the exact cache (e.g. "regenerate"); personalised or time-sensitive calls.
    cache: bool = True
    timeout: float | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call. `input_tokens` counts ALL input tokens, cached ones included
    (OpenAI's and genai-prices' convention); `cache_read_tokens` and `cache_write_tokens` are the
    parts of it read from / written to the provider's prompt cache. Anthropic reports them
    separately, so its adapter adds them into `input_tokens`."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )


FinishReason = Literal[
    "stop", "length", "tool_calls", "content_filter", "cancelled", "truncated", "error"
]


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    """One vendor reply, normalised (Saleor's GatewayResponse idea)."""

    text: str
    usage: Usage
    model: str
    finish_reason: FinishReason = "stop"
    tool_calls: tuple[ToolCall, ...] = ()
    thinking: str = ""
    provider_request_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """What the gateway returns: the reply plus how it was produced and what it cost."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    alias: str
    provider: str
    model: str
    finish_reason: FinishReason
    cost_micros: int
    cached: bool
    fallback_used: bool
    request_id: str
    trace_id: str
    duration_ms: float
    offline: bool = False
    parsed: Any = None  # the validated JSON value for structured outputs


# --- stream events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenEvent:
    text: str
    type: Literal["token"] = "token"


@dataclass(frozen=True, slots=True)
class ThinkingEvent:
    text: str
    type: Literal["thinking"] = "thinking"


@dataclass(frozen=True, slots=True)
class ToolUseEvent:
    call: ToolCall
    type: Literal["tool_use"] = "tool_use"


@dataclass(frozen=True, slots=True)
class ToolResultEvent:
    call_id: str
    content: str
    type: Literal["tool_result"] = "tool_result"


@dataclass(frozen=True, slots=True)
class StatusEvent:
    message: str
    type: Literal["status"] = "status"


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    message: str
    code: str
    retryable: bool = False
    type: Literal["error"] = "error"


@dataclass(frozen=True, slots=True)
class DoneEvent:
    usage: Usage
    reason: FinishReason
    response: ChatResponse | None = None
    type: Literal["done"] = "done"


StreamEvent = (
    TokenEvent
    | ThinkingEvent
    | ToolUseEvent
    | ToolResultEvent
    | StatusEvent
    | ErrorEvent
    | DoneEvent
)


@dataclass(frozen=True, slots=True)
class ProviderUsageEvent:
    """Internal: a provider reports usage (final or running) while streaming."""

    usage: Usage
    model: str = ""
    finish_reason: FinishReason | None = None
    type: Literal["usage"] = "usage"


ProviderEvent = TokenEvent | ThinkingEvent | ToolUseEvent | ProviderUsageEvent


@dataclass(frozen=True, slots=True)
class EmbedRequest:
    alias: str
    inputs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EmbedResponse:
    vectors: tuple[tuple[float, ...], ...]
    model: str
    provider: str
    usage: Usage
    cost_micros: int
    request_id: str
    trace_id: str
