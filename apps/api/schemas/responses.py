"""`/v1/responses`, OpenAI's Responses API, as pydantic models: the request body (validation and
the OpenAPI document) and the response object (the contract schemathesis checks answers
against). Input items are checked one by one in `wire.responses_in`, which names the item at
fault (`input[2].call_id`) the way OpenAI does."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .openai import Lenient, Strict


class ResponseFunctionTool(BaseModel):
    """A function the model may call (`type: "function"`); other tool types (web search, file
    search, computer use, MCP, …) are refused with a 400 that names them."""

    model_config = Lenient
    type: str
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseToolChoice(BaseModel):
    model_config = Lenient
    type: str
    name: str | None = None


class ResponseTextFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    type: Literal["text", "json_object", "json_schema"]
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseText(BaseModel):
    model_config = Strict
    format: ResponseTextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponseCreate(BaseModel):
    """POST /v1/responses. `model` is an alias, a workspace's synonym for one, or
    `agent:<slug>` (keys with the `agents` scope)."""

    model_config = Strict
    model: Annotated[str, Field(min_length=1, max_length=100, examples=["fast", "smart"])]
    input: str | list[dict[str, Any]] = Field(
        description="A text (one user message), or items: messages (`role` + `content`), "
        "`function_call` and `function_call_output`."
    )
    instructions: str | None = None
    tools: list[ResponseFunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ResponseToolChoice | None = None
    text: ResponseText | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    previous_response_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    store: bool | None = True
    metadata: dict[str, str] | None = None
    # Refused unless they ask for what the gateway does anyway (see wire.responses_in).
    background: bool | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    # Accepted and not forwarded.
    include: list[str] | None = None
    parallel_tool_calls: bool | None = None
    max_tool_calls: Annotated[int, Field(ge=1)] | None = None
    reasoning: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    context_management: list[dict[str, Any]] | dict[str, Any] | None = None
    service_tier: str | None = None


# --- the response object ---------------------------------------------------------------------


class OutputText(BaseModel):
    type: Literal["output_text"]
    text: str
    annotations: list[Any]
    logprobs: list[Any] | None = None


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"]
    status: Literal["in_progress", "completed", "incomplete"]
    role: Literal["assistant"]
    content: list[OutputText]


class OutputFunctionCall(BaseModel):
    id: str
    type: Literal["function_call"]
    status: Literal["in_progress", "completed", "incomplete"]
    call_id: str
    name: str
    arguments: str


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: dict[str, int]
    output_tokens: int
    output_tokens_details: dict[str, int]
    total_tokens: int


class Response(BaseModel):
    """A response. With `stream: true` the answer is `text/event-stream`: typed events
    (`event: response.created`, `response.output_text.delta`,
    `response.function_call_arguments.delta`, …, `response.completed` with the usage), each
    `data:` a JSON object with its `type` and `sequence_number`; a provider failure after the
    first event ends with `error` and `response.failed`."""

    id: str
    object: Literal["response"]
    created_at: int
    status: Literal["completed", "incomplete", "in_progress", "failed"]
    error: dict[str, Any] | None
    incomplete_details: dict[str, Any] | None
    instructions: str | None
    max_output_tokens: int | None
    model: str
    output: list[OutputMessage | OutputFunctionCall]
    parallel_tool_calls: bool
    previous_response_id: str | None
    store: bool
    temperature: float | None
    text: dict[str, Any]
    tool_choice: str | dict[str, Any]
    tools: list[dict[str, Any]]
    top_p: float | None
    truncation: str
    usage: ResponseUsage | None
    metadata: dict[str, str]
    aisaas: dict[str, Any] | None = None


class ResponseDeleted(BaseModel):
    id: str
    object: Literal["response"]
    deleted: Literal[True]


__all__ = [
    "OutputFunctionCall",
    "OutputMessage",
    "OutputText",
    "Response",
    "ResponseCreate",
    "ResponseDeleted",
    "ResponseFunctionTool",
    "ResponseText",
    "ResponseTextFormat",
    "ResponseToolChoice",
    "ResponseUsage",
]
