"""OpenAI request bodies → the gateway's request types, refusing what the gateway would
silently not do."""

from __future__ import annotations

import json

from apps.llm.services import ChatRequest, Message, ResponseFormat, Tool, ToolCall

from ..schemas import ChatCompletionRequest, ChatMessage, EmbeddingRequest
from .errors import ApiError


def _refuse(param: str, message: str) -> ApiError:
    return ApiError(400, message, code="unsupported_parameter", param=param)


def unsupported(body: ChatCompletionRequest) -> None:
    """Refuse what the gateway would silently not do."""
    if body.n not in (None, 1):
        raise _refuse("n", "n must be 1: this gateway returns one choice per request.")
    if body.logprobs or body.top_logprobs:
        raise _refuse("logprobs", "logprobs are not supported by this gateway.")
    if body.audio is not None or (body.modalities and set(body.modalities) != {"text"}):
        raise _refuse("modalities", "Only text output is supported; remove audio / modalities.")
    if body.stream_options is not None and not body.stream:
        raise _refuse("stream_options", "stream_options is only allowed when stream is true.")


def _text(message: ChatMessage, index: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
            continue
        param = f"messages[{index}].content[{j}]"
        if kind in ("image_url", "input_audio", "file", "input_image"):
            raise _refuse(param, f"{kind} content parts are not supported: send text only.")
        raise ApiError(
            400,
            f"Invalid content part at '{param}': expected {{'type': 'text', 'text': ...}}.",
            code="invalid_value",
            param=param,
        )
    return "".join(parts)


def _tool_calls(message: ChatMessage, index: int) -> tuple[ToolCall, ...]:
    calls = []
    for j, call in enumerate(message.tool_calls or ()):
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except json.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            param = f"messages[{index}].tool_calls[{j}].function.arguments"
            raise ApiError(
                400,
                f"'{param}' must be a JSON object encoded as a string.",
                code="invalid_value",
                param=param,
            )
        calls.append(ToolCall(id=call.id, name=call.function.name, arguments=arguments))
    return tuple(calls)


def chat_request(body: ChatCompletionRequest, *, request_id: str) -> ChatRequest:
    """The gateway request for an OpenAI body (checked further by the gateway itself)."""
    unsupported(body)
    messages = tuple(
        Message(
            role="system" if m.role == "developer" else m.role,
            content=_text(m, i),
            tool_calls=_tool_calls(m, i),
            tool_call_id=m.tool_call_id,
            name=m.name,
        )
        for i, m in enumerate(body.messages)
    )
    both = body.max_tokens is not None and body.max_completion_tokens is not None
    if both and body.max_tokens != body.max_completion_tokens:
        raise ApiError(
            400,
            "Send max_tokens or max_completion_tokens, not both.",
            code="invalid_value",
            param="max_tokens",
        )
    tool_choice: str | None = None
    if isinstance(body.tool_choice, str):
        tool_choice = body.tool_choice
    elif body.tool_choice is not None:
        tool_choice = body.tool_choice.function.name
    fmt = body.response_format
    response_format = None
    if fmt is not None:
        if fmt.type == "json_schema":
            if fmt.json_schema is None or fmt.json_schema.schema_ is None:
                raise ApiError(
                    400,
                    "response_format.json_schema.schema is required for type json_schema.",
                    code="missing_required_parameter",
                    param="response_format.json_schema.schema",
                )
            response_format = ResponseFormat(
                type="json_schema", json_schema=fmt.json_schema.schema_, name=fmt.json_schema.name
            )
        else:
            response_format = ResponseFormat(type=fmt.type)
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    return ChatRequest(
        alias=body.model,
        messages=messages,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        tools=tuple(
            Tool(
                name=t.function.name,
                description=t.function.description,
                parameters=t.function.parameters,
            )
            for t in body.tools or ()
        ),
        tool_choice=tool_choice,
        response_format=response_format,
        stop=stop,
        metadata={"api_request_id": request_id},
    )


def embed_inputs(body: EmbeddingRequest) -> tuple[str, ...]:
    if body.dimensions is not None:
        raise _refuse(
            "dimensions", "dimensions is not supported: each embedding alias has a fixed size."
        )
    value = body.input
    if isinstance(value, str):
        return (value,)
    if value and not all(isinstance(item, str) for item in value):
        raise _refuse("input", "Token arrays are not supported: send the input as text.")
    if not value:
        raise ApiError(400, "input must not be empty.", code="invalid_value", param="input")
    return tuple(str(item) for item in value)
