"""The request bodies of the OpenAI-compatible API, as pydantic models.

One source for both validation and the OpenAPI document (`openapi.py` publishes their JSON
Schemas). Unknown top-level fields are refused the way OpenAI refuses them ("Unrecognized request
argument supplied: …"), so a typo never silently changes nothing. Parameters OpenAI accepts that
this gateway does not forward (`seed`, `user`, `top_p`, …) are accepted and ignored; those whose
absence would change the answer the client expects (`n` > 1, `logprobs`, audio) are refused with
a 400 that says so (see `wire.unsupported`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Strict = ConfigDict(extra="forbid")
Lenient = ConfigDict(extra="ignore")


class FunctionSpec(BaseModel):
    model_config = Strict
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class ToolSpec(BaseModel):
    model_config = Strict
    type: Literal["function"]
    function: FunctionSpec


class FunctionCall(BaseModel):
    model_config = Lenient
    name: str
    arguments: str  # a JSON object, as text (OpenAI's shape)


class ToolCallSpec(BaseModel):
    model_config = Lenient
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    # Clients echo assistant messages back with fields such as `refusal` or `annotations`:
    # ignored, as OpenAI does. `function` messages and `function_call` are the legacy
    # function-calling shapes (mapped onto tool calls, see wire.chat_request).
    model_config = Lenient
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCallSpec] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCall | None = None


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatSpec(BaseModel):
    model_config = Strict
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class StreamOptions(BaseModel):
    model_config = Lenient
    include_usage: bool = False


class NamedToolChoice(BaseModel):
    model_config = Strict

    class Function(BaseModel):
        model_config = Strict
        name: str

    type: Literal["function"]
    function: Function


class NamedFunction(BaseModel):
    model_config = Strict
    name: str


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions. `model` is an alias (`fast`, `smart`, `reasoning`, …), a
    workspace's synonym for one, or `agent:<slug>`."""

    model_config = Strict
    model: Annotated[str, Field(min_length=1, max_length=100, examples=["fast", "smart"])]
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    response_format: ResponseFormatSpec | None = None
    # Refused unless they ask for what the gateway does anyway (see wire.unsupported).
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    # Accepted and not forwarded.
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    parallel_tool_calls: bool | None = None
    service_tier: str | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    logit_bias: dict[str, int] | None = None
    reasoning_effort: str | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    safety_identifier: str | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    # Legacy function calling: mapped onto `tools` / `tool_choice`.
    functions: Annotated[list[FunctionSpec], Field(min_length=1)] | None = None
    function_call: Literal["none", "auto"] | NamedFunction | None = None


class EmbeddingRequest(BaseModel):
    """POST /v1/embeddings. `model` is an embedding alias (`embed`)."""

    model_config = Strict
    model: Annotated[str, Field(min_length=1, max_length=100, examples=["embed"])]
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


# --- responses (documentation, and the contract schemathesis checks answers against) ---------


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict[str, int] | None = None


class Gateway(BaseModel):
    """What the gateway adds to OpenAI's shape (clients ignore unknown fields)."""

    provider: str
    model: str = Field(description="The provider's model that answered.")
    offline: bool | None = None
    cached: bool | None = None
    fallback_used: bool | None = None
    cost_micros: int = Field(description="Cost in integer micro-dollars.")
    trace_id: str


class FunctionCallOut(BaseModel):
    name: str
    arguments: str


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"]
    function: FunctionCallOut


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None
    refusal: None = None
    tool_calls: list[ToolCallOut] | None = None
    function_call: FunctionCallOut | None = Field(
        default=None, description="Only when the request used the legacy `functions`."
    )


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(BaseModel):
    """The answer to a non-streaming request. With `stream: true` the answer is
    `text/event-stream`: `data: {chat.completion.chunk}` lines, then `data: [DONE]` — or, when
    the provider fails mid-stream, a last `data: {"error": …}` line and no [DONE]."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str = Field(description="The alias that was asked for.")
    choices: list[Choice]
    usage: CompletionUsage
    system_fingerprint: None = None
    aisaas: Gateway


class Embedding(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 little-endian float32.")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
    aisaas: dict[str, Any]


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelInfo]


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None
    param: str | None


class Error(BaseModel):
    """Every non-2xx answer (OpenAI's error shape)."""

    error: ErrorDetail


class FunctionCallDelta(BaseModel):
    name: str | None = None
    arguments: str


class ChunkToolCall(BaseModel):
    """A streamed tool call: the first piece names it (`id`, `type`, `function.name`), the
    next ones carry more of `function.arguments` under the same `index`."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ChunkToolCall] | None = None
    function_call: FunctionCallDelta | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: FinishReason | None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One `data:` event of a stream. With `stream_options.include_usage` the last chunk has no
    choices and carries `usage` (and the gateway's `aisaas` fields)."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    aisaas: Gateway | None = None
