"""Anthropic's Messages API through the official async SDK."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace
from typing import Any

import anthropic
import httpx2
from anthropic.types import Message as SDKMessage

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
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_JSON_OBJECT_INSTRUCTION = "Reply with a single JSON object and nothing else."


class AnthropicProvider:
    """Claude models. The SDK's retries are off: the gateway owns retry and fallback."""

    offline = False

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        name: str = "anthropic",
    ):
        self.name = name
        self._secret = api_key
        self._owns_http_client = http_client is None
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, http_client=http_client, max_retries=0
        )

    async def complete(self, call: ProviderCall) -> ProviderResponse:
        """One non-streamed reply, normalised."""
        try:
            reply = await self._client.messages.create(**_params(call), timeout=call.timeout)
        except Exception as exc:
            raise self._error(exc, mid_stream=False) from None
        return _response(reply)

    async def stream(self, call: ProviderCall) -> AsyncGenerator[ProviderEvent, None]:
        """Stream tokens, thinking and completed tool calls, then one final usage event.

        Usage events are cumulative snapshots (the last one wins): one after `message_start`
        carries the input tokens, so a cancelled stream can still be settled, and the final one
        carries output tokens and the finish reason.
        """
        try:
            events = await self._client.messages.create(
                **_params(call), stream=True, timeout=call.timeout
            )
        except Exception as exc:
            raise self._error(exc, mid_stream=False) from None
        usage, model, finish = Usage(), call.model, None
        tools: dict[int, tuple[str, str, list[str]]] = {}  # block index → (id, name, JSON parts)
        # `async with` closes the HTTP response when this generator is closed or cancelled.
        async with events:
            try:
                async for event in events:
                    if event.type == "message_start":
                        model = event.message.model or model
                        usage = _usage(event.message.usage)
                        yield ProviderUsageEvent(usage=usage, model=model)
                    elif event.type == "content_block_start":
                        block = event.content_block
                        if block.type == "tool_use":
                            tools[event.index] = (block.id, block.name, [])
                    elif event.type == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta":
                            yield TokenEvent(text=delta.text)
                        elif delta.type == "thinking_delta":
                            yield ThinkingEvent(text=delta.thinking)
                        elif delta.type == "input_json_delta" and event.index in tools:
                            tools[event.index][2].append(delta.partial_json)
                    elif event.type == "content_block_stop" and event.index in tools:
                        call_id, name, parts = tools.pop(event.index)
                        arguments = tool_arguments(self.name, "".join(parts))
                        yield ToolUseEvent(
                            call=ToolCall(id=call_id, name=name, arguments=arguments)
                        )
                    elif event.type == "message_delta":
                        finish = _FINISH.get(event.delta.stop_reason, "stop")
                        usage = _delta_usage(usage, event.usage)
            except Exception as exc:
                raise self._error(exc, mid_stream=True) from None
        if finish is None:
            # The body ended cleanly but the message never did: treat it as a cut stream.
            raise transport_error(provider=self.name, timed_out=False, mid_stream=True)
        yield ProviderUsageEvent(usage=usage, model=model, finish_reason=finish)

    async def embed(self, texts: Sequence[str], *, model: str, timeout: float) -> Embeddings:
        """Anthropic has no embeddings API: route the `embed` alias elsewhere."""
        raise ProviderError(
            f"{self.name} has no embeddings API.",
            retryable=False,
            provider=self.name,
            kind="bad_request",
        )

    async def aclose(self) -> None:
        """Release pooled connections; an injected http_client stays the caller's to close."""
        if self._owns_http_client:
            await self._client.close()

    def _error(self, exc: Exception, *, mid_stream: bool) -> ProviderError:
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, anthropic.APIStatusError):
            return status_error(
                provider=self.name,
                status=exc.status_code,
                headers=exc.response.headers,
                error_type=exc.type,
                detail=exc.api_message,
                secret=self._secret,
            )
        # Mid-stream reads surface raw httpx2 errors: the SDK only wraps the initial send.
        if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
            return transport_error(provider=self.name, timed_out=True, mid_stream=mid_stream)
        if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
            return transport_error(provider=self.name, timed_out=False, mid_stream=mid_stream)
        return unexpected_error(provider=self.name, exc=exc)


def _params(call: ProviderCall) -> dict[str, Any]:
    """Our request in Messages API terms.

    Structured output: a JSON Schema uses the API's native `output_config.format` (schema
    reshaped by the SDK's `transform_schema` into the subset the API accepts; the gateway still
    validates against the original). A bare JSON-object request has no native mode, so it is an
    instruction in the system prompt.
    """
    request = call.request
    system = [m.content for m in request.messages if m.role == "system" and m.content]
    params: dict[str, Any] = {
        "model": call.model,
        "max_tokens": call.max_tokens,
        "messages": _messages(request.messages),
    }
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
        params["output_config"] = {
            "format": {"type": "json_schema", "schema": anthropic.transform_schema(fmt.json_schema)}
        }
    elif fmt is not None and fmt.type != "text":
        system.append(_JSON_OBJECT_INSTRUCTION)
    if system:
        params["system"] = "\n\n".join(system)
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.tools:
        params["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
    if request.tool_choice:
        params["tool_choice"] = _tool_choice(request.tool_choice)
    return params


def _messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Chat turns as Anthropic wants them: tool results are user-turn blocks, and consecutive
    results share one user turn (parallel tool calls must be answered together)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.content,
            }
            last = out[-1] if out else None
            if last and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif message.role == "assistant" and message.tool_calls:
            blocks: list[dict[str, Any]] = []
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in message.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": message.role, "content": message.content})
    return out


def _tool_choice(choice: str) -> dict[str, str]:
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    return {"type": "tool", "name": choice}


def _response(reply: SDKMessage) -> ProviderResponse:
    text: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    for block in reply.content:
        if block.type == "text":
            text.append(block.text)
        elif block.type == "thinking":
            thinking.append(block.thinking)
        elif block.type == "tool_use":
            calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(block.input)))
    return ProviderResponse(
        text="".join(text),
        usage=_usage(reply.usage),
        model=reply.model,
        finish_reason=_FINISH.get(reply.stop_reason, "stop"),
        tool_calls=tuple(calls),
        thinking="".join(thinking),
        provider_request_id=reply._request_id,
    )


def _usage(usage: anthropic.types.Usage) -> Usage:
    """Anthropic reports cache reads and writes apart from input_tokens; ours includes them."""
    read = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    return Usage(
        input_tokens=usage.input_tokens + read + written,
        output_tokens=usage.output_tokens,
        cache_read_tokens=read,
        cache_write_tokens=written,
    )


def _delta_usage(current: Usage, delta: anthropic.types.MessageDeltaUsage) -> Usage:
    """message_delta usage is cumulative; input counts appear only when the API sends them."""
    if delta.input_tokens is None:
        return replace(current, output_tokens=delta.output_tokens)
    read = delta.cache_read_input_tokens
    written = delta.cache_creation_input_tokens
    read = current.cache_read_tokens if read is None else read
    written = current.cache_write_tokens if written is None else written
    return Usage(
        input_tokens=delta.input_tokens + read + written,
        output_tokens=delta.output_tokens,
        cache_read_tokens=read,
        cache_write_tokens=written,
    )
