"""OpenAI Chat Completions (and any OpenAI-compatible server) through the official async SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx2
import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion

from ..errors import ProviderError
from ..types import (
    FinishReason,
    Message,
    ProviderEvent,
    ProviderResponse,
    ProviderUsageEvent,
    ThinkingEvent,
    TokenEvent,
    ToolCall,
    ToolUseEvent,
    Usage,
)
from .base import Embeddings, ProviderCall
from .http_errors import status_error, tool_arguments, transport_error, unexpected_error

_FINISH: dict[str | None, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
# Servers that stream reasoning put it in one of these non-standard fields (vLLM/DeepSeek, Ollama).
_REASONING_FIELDS = ("reasoning_content", "reasoning")


class OpenAIProvider:
    """OpenAI, or with `name="openai_compatible"` and a `base_url`, Ollama, vLLM, llama.cpp…

    The SDK's retries are off: the gateway owns retry and fallback.
    """

    offline = False

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        name: str = "openai",
    ):
        self.name = name
        self._secret = api_key
        self._owns_http_client = http_client is None
        # Local servers take no key, but the SDK insists on one.
        self._client = openai.AsyncOpenAI(
            api_key=api_key or "unused",
            base_url=base_url,
            http_client=http_client,
            max_retries=0,
        )

    async def complete(self, call: ProviderCall) -> ProviderResponse:
        """One non-streamed reply, normalised."""
        try:
            reply = await self._client.chat.completions.create(
                **self._params(call), timeout=call.timeout
            )
        except Exception as exc:
            raise self._error(exc, mid_stream=False) from None
        return self._response(reply)

    async def stream(self, call: ProviderCall) -> AsyncGenerator[ProviderEvent, None]:
        """Stream tokens, reasoning and completed tool calls, then one final usage event."""
        try:
            chunks = await self._client.chat.completions.create(
                **self._params(call),
                stream=True,
                stream_options={"include_usage": True},
                timeout=call.timeout,
            )
        except Exception as exc:
            raise self._error(exc, mid_stream=False) from None
        usage, model, finish = Usage(), call.model, None
        tools: dict[int, list[str]] = {}  # index → [id, name, JSON arguments so far]
        # `async with` closes the HTTP response when this generator is closed or cancelled.
        async with chunks:
            try:
                async for chunk in chunks:
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = _usage(chunk.usage)
                    for choice in chunk.choices[:1]:
                        delta = choice.delta
                        if reasoning := _reasoning(delta):
                            yield ThinkingEvent(text=reasoning)
                        if delta.content:
                            yield TokenEvent(text=delta.content)
                        for part in delta.tool_calls or ():
                            entry = tools.setdefault(part.index, ["", "", ""])
                            entry[0] = part.id or entry[0]
                            if part.function is not None:
                                entry[1] = part.function.name or entry[1]
                                entry[2] += part.function.arguments or ""
                        if choice.finish_reason is not None:
                            finish = _FINISH.get(choice.finish_reason, "stop")
                            # Arguments are complete only once the choice finishes.
                            for index in sorted(tools):
                                call_id, name, raw = tools.pop(index)
                                arguments = tool_arguments(self.name, raw)
                                tool_call = ToolCall(id=call_id, name=name, arguments=arguments)
                                yield ToolUseEvent(call=tool_call)
            except Exception as exc:
                raise self._error(exc, mid_stream=True) from None
        if finish is None:
            # The body ended cleanly but no choice finished: treat it as a cut stream.
            raise transport_error(provider=self.name, timed_out=False, mid_stream=True)
        yield ProviderUsageEvent(usage=usage, model=model, finish_reason=finish)

    async def embed(self, texts: Sequence[str], *, model: str, timeout: float) -> Embeddings:
        """Vectors in input order. Floats, not the SDK's default base64: local servers differ."""
        try:
            reply = await self._client.embeddings.create(
                model=model, input=list(texts), encoding_format="float", timeout=timeout
            )
        except Exception as exc:
            raise self._error(exc, mid_stream=False) from None
        rows = sorted(reply.data, key=lambda row: row.index)
        return Embeddings(
            vectors=tuple(tuple(float(x) for x in row.embedding) for row in rows),
            model=reply.model,
            usage=Usage(input_tokens=reply.usage.prompt_tokens),
        )

    async def aclose(self) -> None:
        """Release pooled connections; an injected http_client stays the caller's to close."""
        if self._owns_http_client:
            await self._client.close()

    def _params(self, call: ProviderCall) -> dict[str, Any]:
        """Our request in Chat Completions terms.

        OpenAI itself wants `max_completion_tokens` (reasoning models reject `max_tokens`);
        compatible servers mostly know only `max_tokens`.
        """
        request = call.request
        limit = "max_completion_tokens" if self.name == "openai" else "max_tokens"
        params: dict[str, Any] = {
            "model": call.model,
            "messages": [_message(m) for m in request.messages],
            limit: call.max_tokens,
        }
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.stop:
            params["stop"] = list(request.stop)
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
        if request.tool_choice:
            params["tool_choice"] = _tool_choice(request.tool_choice)
        fmt = request.response_format
        if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
            # strict=False: strict mode rejects schemas outside its subset; the gateway validates.
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": fmt.name, "schema": fmt.json_schema, "strict": False},
            }
        elif fmt is not None and fmt.type != "text":
            params["response_format"] = {"type": "json_object"}
            # JSON mode is refused unless the word "JSON" appears in the messages.
            if not any("json" in m.content.lower() for m in request.messages):
                hint = {"role": "system", "content": "Reply with a single JSON object."}
                params["messages"] = [hint, *params["messages"]]
        return params

    def _response(self, reply: ChatCompletion) -> ProviderResponse:
        if not reply.choices:
            raise ProviderError(
                f"{self.name} returned no choices.", retryable=True, provider=self.name
            )
        choice = reply.choices[0]
        message = choice.message
        calls = tuple(
            ToolCall(
                id=c.id,
                name=c.function.name,
                arguments=tool_arguments(self.name, c.function.arguments),
            )
            for c in message.tool_calls or ()
            if c.type == "function"
        )
        return ProviderResponse(
            text=message.content or "",
            usage=_usage(reply.usage) if reply.usage is not None else Usage(),
            model=reply.model,
            finish_reason=_FINISH.get(choice.finish_reason, "stop"),
            tool_calls=calls,
            thinking=_reasoning(message),
            provider_request_id=reply._request_id,
        )

    def _error(self, exc: Exception, *, mid_stream: bool) -> ProviderError:
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, openai.APIStatusError):
            return status_error(
                provider=self.name,
                status=exc.status_code,
                headers=exc.response.headers,
                error_type=_str_or_none(exc.type),
                detail=_detail(exc.body),
                secret=self._secret,
            )
        if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
            return transport_error(provider=self.name, timed_out=True, mid_stream=mid_stream)
        if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
            return transport_error(provider=self.name, timed_out=False, mid_stream=mid_stream)
        if isinstance(exc, openai.APIError):
            # An error object inside an otherwise healthy stream.
            return status_error(
                provider=self.name,
                status=200,
                headers=None,
                error_type=_str_or_none(exc.type),
                detail=exc.message,
                secret=self._secret,
            )
        return unexpected_error(provider=self.name, exc=exc)


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": message.content,
        }
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name and message.role == "user":
        out["name"] = message.name
    if message.role == "assistant" and message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in message.tool_calls
        ]
    return out


def _tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _usage(usage: CompletionUsage) -> Usage:
    """prompt_tokens already includes the cached part, as our input_tokens does."""
    details = usage.prompt_tokens_details
    return Usage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cache_read_tokens=(details.cached_tokens or 0) if details is not None else 0,
        cache_write_tokens=(details.cache_write_tokens or 0) if details is not None else 0,
    )


def _reasoning(part: object) -> str:
    for field in _REASONING_FIELDS:
        value = getattr(part, field, None)
        if isinstance(value, str) and value:
            return value
    return ""


def _detail(body: object) -> str | None:
    """The vendor's short explanation: `error.message` (the SDK passes the inner object)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
