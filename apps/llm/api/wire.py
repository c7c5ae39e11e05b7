"""OpenAI's wire shapes ↔ the gateway's types: request bodies in, completions, stream chunks,
embeddings and errors out. Plain functions, no I/O."""

from __future__ import annotations

import base64
import calendar
import json
import struct
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from apps.llm.core.errors import (
    BudgetExceededError,
    GatewayError,
    InvalidRequestError,
    ProviderError,
    ProviderUnavailableError,
    UnknownAliasError,
)
from apps.llm.core.types import (
    ChatRequest,
    ChatResponse,
    EmbedResponse,
    Message,
    ResponseFormat,
    Tool,
    ToolCall,
    Usage,
)

from .schemas import ChatCompletionRequest, ChatMessage, EmbeddingRequest


class ApiError(Exception):
    """An answer other than 200, in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status,
            message,
            type_,
            code,
            param,
        )
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }


# --- requests -------------------------------------------------------------------------------


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(
            400,
            "We could not parse the JSON body of your request. Send a JSON object with "
            "Content-Type: application/json.",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return data


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validation_error(exc: ValidationError) -> ApiError:
    """The first problem pydantic found, naming the field the way OpenAI does."""
    error = exc.errors(include_url=False)[0]
    # For unions pydantic names the variant it tried (e.g. "str" or "list[str]"): drop those.
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p in _TYPES)))
    param = _param(loc)
    if error["type"] == "extra_forbidden":
        return ApiError(
            400,
            f"Unrecognized request argument supplied: {param}",
            code="unknown_parameter",
            param=param,
        )
    if error["type"] == "missing":
        return ApiError(
            400,
            f"Missing required parameter: '{param}'.",
            code="missing_required_parameter",
            param=param,
        )
    return ApiError(
        400, f"Invalid value for '{param}': {error['msg']}.", code="invalid_value", param=param
    )


_TYPES = {
    "str",
    "int",
    "float",
    "bool",
    "list",
    "dict",
    "function-after",
    "literal",
    "NamedToolChoice",
}


def chat_body(data: dict[str, Any]) -> ChatCompletionRequest:
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def embedding_body(data: dict[str, Any]) -> EmbeddingRequest:
    try:
        return EmbeddingRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


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


# --- responses ------------------------------------------------------------------------------


_FINISH = {"cancelled": "stop", "truncated": "length", "error": "stop"}


def usage(u: Usage) -> dict[str, Any]:
    prompt = u.input_tokens + u.cache_read_tokens + u.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens},
    }


def tool_call(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
    }
    if index is not None:
        out["index"] = index
    return out


def extension(reply: ChatResponse) -> dict[str, Any]:
    """What the gateway adds to OpenAI's shape (clients ignore unknown fields)."""
    return {
        "provider": reply.provider,
        "model": reply.model,
        "offline": reply.offline,
        "cached": reply.cached,
        "fallback_used": reply.fallback_used,
        "cost_micros": reply.cost_micros,
        "trace_id": reply.trace_id,
    }


def completion(reply: ChatResponse, *, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [tool_call(c) for c in reply.tool_calls]
    return {
        "id": f"chatcmpl-{reply.request_id}",
        "object": "chat.completion",
        "created": created,
        "model": reply.alias,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _FINISH.get(reply.finish_reason, reply.finish_reason),
                "logprobs": None,
            }
        ],
        "usage": usage(reply.usage),
        "system_fingerprint": None,
        "aisaas": extension(reply),
    }


@dataclass
class Chunks:
    """Builds one stream's `chat.completion.chunk` objects."""

    request_id: str
    alias: str
    created: int
    tool_calls: int = 0

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{self.request_id}",
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.alias,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    def role(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""})

    def token(self, text: str) -> dict[str, Any]:
        return self._chunk({"content": text})

    def tool_use(self, call: ToolCall) -> dict[str, Any]:
        chunk = self._chunk({"tool_calls": [tool_call(call, self.tool_calls)]})
        self.tool_calls += 1
        return chunk

    def finish(self, reason: str) -> dict[str, Any]:
        return self._chunk({}, _FINISH.get(reason, reason))

    def usage(self, reply: ChatResponse | None, u: Usage) -> dict[str, Any]:
        chunk = self._chunk({})
        chunk["choices"] = []
        chunk["usage"] = usage(u)
        if reply is not None:
            chunk["aisaas"] = extension(reply)
        return chunk


def embeddings(reply: EmbedResponse, *, alias: str, encoding: str) -> dict[str, Any]:
    def encode(vector: tuple[float, ...]) -> list[float] | str:
        if encoding == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return list(vector)

    tokens = reply.usage.input_tokens
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v)}
            for i, v in enumerate(reply.vectors)
        ],
        "model": alias,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "aisaas": {
            "provider": reply.provider,
            "model": reply.model,
            "cost_micros": reply.cost_micros,
            "trace_id": reply.trace_id,
        },
    }


def models(aliases: list[str]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": a, "object": "model", "created": 0, "owned_by": "aisaas"} for a in aliases],
    }


# --- errors ---------------------------------------------------------------------------------


def gateway_error(exc: GatewayError) -> ApiError:
    """The HTTP answer for a gateway error (the message is safe to show: no keys, no bodies)."""
    if isinstance(exc, UnknownAliasError):
        return ApiError(404, exc.message, code="model_not_found", param="model")
    if isinstance(exc, InvalidRequestError):
        param = "model" if exc.field == "alias" else exc.field
        return ApiError(400, exc.message, code=exc.code, param=param)
    if isinstance(exc, BudgetExceededError):
        denial = exc.denial
        if denial.kind == "rate":
            return ApiError(
                429,
                exc.message,
                type_="rate_limit_error",
                code=f"{denial.scope}_exceeded",
                headers={"retry-after": str(retry_after(denial.resets_at))},
            )
        return ApiError(
            402, exc.message, type_="insufficient_quota", code=f"{denial.scope}_exceeded"
        )
    if isinstance(exc, ProviderUnavailableError):
        return ApiError(503, exc.message, type_="api_error", code=exc.code)
    if isinstance(exc, ProviderError):
        return ApiError(502, exc.message, type_="api_error", code=exc.code)
    return ApiError(502, exc.message, type_="api_error", code=exc.code)


def retry_after(resets_at: str | None) -> int:
    """Whole seconds until `resets_at` (ISO, UTC), at least 1."""
    if not resets_at:
        return 1
    reset = calendar.timegm(time.strptime(resets_at, "%Y-%m-%dT%H:%M:%SZ"))
    return max(1, int(reset - time.time()) + 1)
