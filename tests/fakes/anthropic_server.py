"""A fake Anthropic Messages API (`POST /v1/messages`) close enough for the official SDK.

Wire format follows the SDK's own types (anthropic/types/raw_*_event.py): the streamed event
sequence message_start → content_block_start/delta/stop per block → message_delta (stop_reason,
cumulative usage) → message_stop, with `event:` lines, as the SDK skips events without a name.
"""

from __future__ import annotations

import json
from typing import Any

from .script import Fault, Planned, arg_chunks, plan, tokens
from .server import Exchange, FakeServer

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_ERROR_TYPES = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "An unexpected error has occurred internal to Anthropic's systems."),
    529: ("overloaded_error", "Overloaded"),
}


class FakeAnthropicServer(FakeServer):
    """Point `AsyncAnthropic(base_url=server.url)` at it."""

    def handle(self, ex: Exchange) -> None:
        if ex.record.method == "POST" and ex.record.path == "/v1/messages":
            self._messages(ex)
        else:
            self.send_error(ex, 404, None)

    def error_event(self, fault: Fault) -> tuple[str | None, str]:
        kind, message = _ERROR_TYPES.get(fault.status, _ERROR_TYPES[500])
        return "error", json.dumps({"type": "error", "error": {"type": kind, "message": message}})

    def send_error(self, ex: Exchange, status: int, fault: Fault | None) -> None:
        kind, message = _ERROR_TYPES.get(status, ("api_error", "Internal server error"))
        headers = {"request-id": _request_id(ex)}
        if fault is not None and fault.retry_after is not None:
            headers["retry-after"] = _seconds(fault.retry_after)
        if fault is not None and fault.message:
            message = fault.message
        body = {"type": "error", "error": {"type": kind, "message": message}}
        ex.send_json(status, {**body, "request_id": headers["request-id"]}, headers)

    def _messages(self, ex: Exchange) -> None:
        body = ex.record.body if isinstance(ex.record.body, dict) else {}
        messages = body.get("messages") or []
        fmt = (body.get("output_config") or {}).get("format") or {}
        planned = plan(
            self.next_reply(),
            prompt=_last_user_text(messages),
            input_words=len(tokens(_all_text(body.get("system"), messages))),
            max_tokens=body.get("max_tokens"),
            json_schema=fmt.get("schema") if fmt.get("type") == "json_schema" else None,
            id_prefix="toolu_",
        )
        model = str(body.get("model", "claude-fake"))
        if body.get("stream"):
            self._stream(ex, planned, model)
        elif self.before_body(ex):
            message = _message(ex, planned, model, _content(planned))
            ex.send_json(200, message, {"request-id": _request_id(ex)})

    def _stream(self, ex: Exchange, planned: Planned, model: str) -> None:
        start = _message(ex, planned, model, [])
        start["stop_reason"] = None
        start["usage"]["output_tokens"] = 1
        ex.start_stream({"request-id": _request_id(ex)})
        if not self.before_first_event(ex):
            return
        if not _event(ex, "message_start", {"message": start}):
            return
        index = 0
        blocks: list[tuple[dict[str, Any], str, list[str]]] = []
        if planned.thinking:
            thinking_block = {"type": "thinking", "thinking": "", "signature": ""}
            blocks.append((thinking_block, "thinking_delta", tokens(planned.thinking)))
        if planned.text or not planned.tool_calls:
            blocks.append(({"type": "text", "text": ""}, "text_delta", tokens(planned.text)))
        for call_id, name, arguments in planned.tool_calls:
            tool_block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
            blocks.append((tool_block, "input_json_delta", arg_chunks(arguments)))
        for index, (block, delta_type, pieces) in enumerate(blocks):
            if not _event(ex, "content_block_start", {"index": index, "content_block": block}):
                return
            for piece in pieces:
                if not (ex.pace(self.token_delay) and _delta(ex, index, delta_type, piece)):
                    return
            if delta_type == "thinking_delta":
                signature = {"type": "signature_delta", "signature": "fake-signature"}
                if not _event(ex, "content_block_delta", {"index": index, "delta": signature}):
                    return
            if not _event(ex, "content_block_stop", {"index": index}):
                return
        delta = {
            "delta": {"stop_reason": _STOP_REASONS[planned.finish], "stop_sequence": None},
            "usage": {"output_tokens": planned.output_tokens},
        }
        if _event(ex, "message_delta", delta) and _event(ex, "message_stop", {}):
            ex.end_stream()


def _event(ex: Exchange, name: str, payload: dict[str, Any]) -> bool:
    return ex.send_event(json.dumps({"type": name, **payload}), event=name)


def _delta(ex: Exchange, index: int, delta_type: str, piece: str) -> bool:
    field = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}
    payload = {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": delta_type, field[delta_type]: piece},
    }
    return ex.send_event(json.dumps(payload), event="content_block_delta", token=True)


def _message(
    ex: Exchange, planned: Planned, model: str, content: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": f"msg_fake{ex.record.number:04d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _STOP_REASONS[planned.finish],
        "stop_sequence": None,
        "usage": {
            "input_tokens": planned.input_tokens,
            "output_tokens": planned.output_tokens,
            "cache_read_input_tokens": planned.cache_read_tokens,
            "cache_creation_input_tokens": planned.cache_write_tokens,
        },
    }


def _content(planned: Planned) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    if planned.thinking:
        content.append(
            {"type": "thinking", "thinking": planned.thinking, "signature": "fake-signature"}
        )
    if planned.text or not planned.tool_calls:
        content.append({"type": "text", "text": planned.text})
    for call_id, name, arguments in planned.tool_calls:
        content.append(
            {"type": "tool_use", "id": call_id, "name": name, "input": json.loads(arguments)}
        )
    return content


def _text(content: Any) -> str:
    """The readable text of a message's content: a string or a list of blocks."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_result":
            parts.append(_text(block.get("content", "")))
    return " ".join(parts)


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _all_text(system: Any, messages: list[Any]) -> str:
    texts = [_text(system or "")]
    texts += [_text(m.get("content")) for m in messages if isinstance(m, dict)]
    return " ".join(texts)


def _request_id(ex: Exchange) -> str:
    return f"req_fake{ex.record.number:04d}"


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
