"""OpenAI request bodies → the gateway's request types, refusing what the gateway would
silently not do."""

from __future__ import annotations

import json
from typing import Any

from apps.llm.services import (
    ChatRequest,
    Message,
    ResponseFormat,
    Tool,
    ToolCall,
    decode_tokens,
)

from ..schemas import (
    ChatCompletionRequest,
    ChatMessage,
    EmbeddingRequest,
    NamedFunction,
    NamedToolChoice,
    ToolSpec,
)
from .errors import ApiError

_ROLES = {"developer": "system", "function": "tool"}


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


def arguments_object(text: str | None, param: str) -> dict[str, Any]:
    """Function-call arguments (a JSON object encoded as a string) as a dict; 400 otherwise."""
    try:
        arguments = json.loads(text or "{}")
    except json.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise ApiError(
            400,
            f"'{param}' must be a JSON object encoded as a string.",
            code="invalid_value",
            param=param,
        )
    return arguments


def _tool_calls(message: ChatMessage, index: int) -> tuple[ToolCall, ...]:
    calls = []
    for j, call in enumerate(message.tool_calls or ()):
        param = f"messages[{index}].tool_calls[{j}].function.arguments"
        arguments = arguments_object(call.function.arguments, param)
        calls.append(ToolCall(id=call.id, name=call.function.name, arguments=arguments))
    if message.function_call is not None:  # legacy: one call, identified by its position
        legacy = message.function_call
        param = f"messages[{index}].function_call.arguments"
        arguments = arguments_object(legacy.arguments, param)
        calls.append(ToolCall(id=_legacy_call_id(index), name=legacy.name, arguments=arguments))
    return tuple(calls)


def _legacy_call_id(index: int) -> str:
    return f"call_legacy_{index}"


def _legacy_result_id(messages: list[ChatMessage], index: int) -> str | None:
    """A `function` message answers the latest assistant `function_call` before it."""
    for i in range(index - 1, -1, -1):
        if messages[i].function_call is not None:
            return _legacy_call_id(i)
    return None


def _functions_as_tools(body: ChatCompletionRequest) -> None:
    """Legacy `functions` / `function_call` become `tools` / `tool_choice` (in place)."""
    if body.functions is None and body.function_call is None:
        return
    if body.tools is not None or body.tool_choice is not None:
        raise ApiError(
            400,
            "Send either tools/tool_choice or the legacy functions/function_call, not both.",
            code="invalid_value",
            param="functions",
        )
    body.tools = [ToolSpec(type="function", function=f) for f in body.functions or ()]
    choice = body.function_call
    if isinstance(choice, NamedFunction):
        body.tool_choice = NamedToolChoice(
            type="function", function=NamedToolChoice.Function(name=choice.name)
        )
    else:
        body.tool_choice = choice


def uses_legacy_functions(body: ChatCompletionRequest) -> bool:
    """Whether the answer must use the legacy `function_call` shape."""
    return body.functions is not None


def chat_request(body: ChatCompletionRequest, *, request_id: str) -> ChatRequest:
    """The gateway request for an OpenAI body (checked further by the gateway itself)."""
    unsupported(body)
    _functions_as_tools(body)
    messages = tuple(
        Message(
            role=_ROLES.get(m.role, m.role),  # type: ignore[arg-type]
            content=_text(m, i),
            tool_calls=_tool_calls(m, i),
            tool_call_id=(
                _legacy_result_id(body.messages, i) if m.role == "function" else m.tool_call_id
            ),
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
    """The texts to embed: strings as they are, token arrays (LangChain's OpenAIEmbeddings
    sends cl100k_base ids by default) decoded with the bundled tokenizer."""
    value = body.input
    if isinstance(value, str):
        return (value,)
    if not value:
        raise ApiError(400, "input must not be empty.", code="invalid_value", param="input")
    if all(isinstance(item, int) for item in value):
        return (decoded_tokens(value, "input"),)  # type: ignore[arg-type]
    texts = []
    for i, item in enumerate(value):
        if isinstance(item, list):
            if not item:
                raise ApiError(
                    400, f"input[{i}] must not be empty.", code="invalid_value", param="input"
                )
            texts.append(decoded_tokens(item, f"input[{i}]"))
        else:
            texts.append(str(item))
    return tuple(texts)


def decoded_tokens(ids: list[int], param: str) -> str:
    """Token ids (cl100k_base) as text; 400 naming `param` for an id outside it."""
    try:
        return decode_tokens(ids)
    except ValueError:
        raise ApiError(
            400,
            f"'{param}' holds a token id outside the cl100k_base vocabulary (the only one "
            "token arrays are read with); send the input as text.",
            code="invalid_value",
            param=param,
        ) from None


# Embedding models whose vectors may be shortened (Matryoshka training): their full size.
SHORTENABLE = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}


def embed_dimensions(body: EmbeddingRequest, model: str) -> int | None:
    """`dimensions` checked against the model that will answer: only models trained to be
    shortened honour it (OpenAI's text-embedding-3 family); others are refused, naming it."""
    if body.dimensions is None:
        return None
    size = SHORTENABLE.get(model)
    if size is None:
        raise _refuse(
            "dimensions",
            f"dimensions is not supported by the model this alias uses ({model}): its vectors "
            "have a fixed size. Leave dimensions out.",
        )
    if not 1 <= body.dimensions <= size:
        raise ApiError(
            400,
            f"dimensions must be between 1 and {size} for {model}.",
            code="invalid_value",
            param="dimensions",
        )
    return body.dimensions
