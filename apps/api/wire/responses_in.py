"""`/v1/responses` bodies in: a Responses body becomes a chat body (input items as messages,
function tools, `text.format` as `response_format`, `max_output_tokens`), so it meets the chat
path's checks and refusals. The conversation is kept as Responses items (text content only),
which is what a stored response holds for `previous_response_id`."""

from __future__ import annotations

from typing import Any, Literal

from ..schemas import (
    ChatCompletionRequest,
    ChatMessage,
    FunctionCall,
    FunctionSpec,
    JsonSchemaSpec,
    NamedToolChoice,
    ResponseFormatSpec,
    ToolCallSpec,
    ToolSpec,
)
from ..schemas.responses import ResponseCreate
from .errors import ApiError
from .requests import arguments_object

Item = dict[str, Any]

_TEXT_PARTS = {"input_text", "output_text", "text"}
_ROLES = {"user", "assistant", "system", "developer"}


def _refuse(param: str, message: str) -> ApiError:
    return ApiError(400, message, code="unsupported_parameter", param=param)


def _invalid(param: str, message: str) -> ApiError:
    return ApiError(400, message, code="invalid_value", param=param)


def unsupported(body: ResponseCreate) -> None:
    """Refuse what the gateway would silently not do."""
    if body.background:
        raise _refuse("background", "background responses are not supported: omit background.")
    if body.conversation is not None:
        raise _refuse(
            "conversation",
            "conversations are not supported: chain responses with previous_response_id.",
        )
    if body.prompt is not None:
        raise _refuse("prompt", "stored prompt templates are not supported: send the input.")
    if body.top_logprobs:
        raise _refuse("top_logprobs", "logprobs are not supported by this gateway.")


def _text(content: Any, param: str) -> str:
    """The text of a message's content: a string, or text parts (images, files and audio are
    refused, naming the part)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _invalid(param, f"'{param}' must be a string or a list of content parts.")
    texts = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        elif kind in ("input_image", "input_file", "input_audio"):
            raise _refuse(where, f"{kind} content parts are not supported: send text only.")
        else:
            raise _invalid(where, f"Invalid content part at '{where}': expected input_text.")
    return "".join(texts)


def input_items(body: ResponseCreate) -> list[Item]:
    """The request's input as canonical items (text only): messages, function calls and
    their outputs. Each problem is a 400 naming the item (`input[2].call_id`)."""
    if isinstance(body.input, str):
        return [{"type": "message", "role": "user", "content": body.input}]
    items: list[Item] = []
    for i, raw in enumerate(body.input):
        where = f"input[{i}]"
        kind = raw.get("type", "message" if "role" in raw else None)
        if kind == "message":
            role = raw.get("role")
            if role not in _ROLES:
                raise _invalid(f"{where}.role", f"'{where}.role' must be one of {sorted(_ROLES)}.")
            text = _text(raw.get("content"), f"{where}.content")
            items.append({"type": "message", "role": role, "content": text})
        elif kind == "function_call":
            for name in ("call_id", "name", "arguments"):
                if not isinstance(raw.get(name), str) or (name != "arguments" and not raw[name]):
                    raise _invalid(f"{where}.{name}", f"'{where}.{name}' must be a string.")
            arguments_object(raw["arguments"], f"{where}.arguments")
            items.append(
                {
                    "type": "function_call",
                    "call_id": raw["call_id"],
                    "name": raw["name"],
                    "arguments": raw["arguments"],
                }
            )
        elif kind == "function_call_output":
            call_id = raw.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise _invalid(f"{where}.call_id", f"'{where}.call_id' must be a string.")
            output = _text(raw.get("output", ""), f"{where}.output")
            items.append({"type": "function_call_output", "call_id": call_id, "output": output})
        elif kind == "reasoning":
            continue  # another model's reasoning, echoed back by clients: nothing to send
        elif kind == "item_reference":
            raise _refuse(where, "item_reference is not supported: send the item itself.")
        else:
            raise _refuse(
                f"{where}.type",
                f"Input items of type {kind!r} are not supported; send messages, "
                "function_call and function_call_output items.",
            )
    if not items:
        raise _invalid("input", "input must hold at least one message or function call.")
    return items


def _messages(items: list[Item]) -> list[ChatMessage]:
    """Items as chat messages: function calls join the assistant turn before them (parallel
    calls are one turn), outputs become tool messages."""
    messages: list[ChatMessage] = []
    for item in items:
        if item["type"] == "message":
            messages.append(ChatMessage(role=item["role"], content=item["content"]))
        elif item["type"] == "function_call":
            call = ToolCallSpec(
                id=item["call_id"],
                function=FunctionCall(name=item["name"], arguments=item["arguments"]),
            )
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":
                last.tool_calls = [*(last.tool_calls or []), call]
            else:
                messages.append(ChatMessage(role="assistant", content=None, tool_calls=[call]))
        else:
            messages.append(
                ChatMessage(role="tool", content=item["output"], tool_call_id=item["call_id"])
            )
    return messages


def _tools(body: ResponseCreate) -> list[ToolSpec] | None:
    if body.tools is None:
        return None
    tools = []
    for i, tool in enumerate(body.tools):
        if tool.type != "function":
            raise _refuse(
                f"tools[{i}].type",
                f"Only function tools are supported; {tool.type!r} tools are not.",
            )
        if tool.name is None:
            raise ApiError(
                400,
                f"Missing required parameter: 'tools[{i}].name'.",
                code="missing_required_parameter",
                param=f"tools[{i}].name",
            )
        spec = FunctionSpec(
            name=tool.name,
            description=tool.description or "",
            parameters=tool.parameters or {"type": "object", "properties": {}},
            strict=tool.strict,
        )
        tools.append(ToolSpec(type="function", function=spec))
    return tools


def _tool_choice(
    body: ResponseCreate,
) -> Literal["none", "auto", "required"] | NamedToolChoice | None:
    choice = body.tool_choice
    if choice is None or isinstance(choice, str):
        return choice
    if choice.type == "function" and choice.name:
        return NamedToolChoice(type="function", function=NamedToolChoice.Function(name=choice.name))
    raise _refuse("tool_choice", f"tool_choice of type {choice.type!r} is not supported.")


def _response_format(body: ResponseCreate) -> ResponseFormatSpec | None:
    fmt = body.text.format if body.text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return ResponseFormatSpec(type="json_object")
    if fmt.schema_ is None:
        raise ApiError(
            400,
            "text.format.schema is required for type json_schema.",
            code="missing_required_parameter",
            param="text.format.schema",
        )
    spec = JsonSchemaSpec(
        name=fmt.name or "response",
        description=fmt.description,
        schema=fmt.schema_,
        strict=fmt.strict,
    )
    return ResponseFormatSpec(type="json_schema", json_schema=spec)


def as_chat(body: ResponseCreate, conversation: list[Item]) -> ChatCompletionRequest:
    """The chat body that answers `body` over `conversation` (previous items + this input):
    the chat path's checks and refusals apply to it."""
    messages = _messages(conversation)
    if body.instructions:
        messages.insert(0, ChatMessage(role="system", content=body.instructions))
    return ChatCompletionRequest(
        model=body.model,
        messages=messages,
        max_completion_tokens=body.max_output_tokens,
        temperature=body.temperature,
        tools=_tools(body),
        tool_choice=_tool_choice(body),
        response_format=_response_format(body),
        stream=body.stream,
    )
