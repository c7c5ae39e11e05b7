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
    # ignored, as OpenAI does.
    model_config = Lenient
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCallSpec] | None = None
    tool_call_id: str | None = None


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


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions. `model` is an alias (`fast`, `smart`, `reasoning`, …)."""

    model_config = Strict
    model: Annotated[str, Field(min_length=1, max_length=100)]
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    response_format: ResponseFormatSpec | None = None
    # Refused unless they ask for what the gateway does anyway (see wire.unsupported).
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    # Accepted and not forwarded.
    top_p: float | None = None
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    parallel_tool_calls: bool | None = None
    service_tier: str | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, int] | None = None
    reasoning_effort: str | None = None


class EmbeddingRequest(BaseModel):
    """POST /v1/embeddings. `model` is an embedding alias (`embed`)."""

    model_config = Strict
    model: Annotated[str, Field(min_length=1, max_length=100)]
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None
