"""A fake OpenAI API (chat completions, embeddings, models) close enough for the official SDK.

Shapes follow the SDK's types (openai/types/chat/chat_completion_chunk.py, completion_usage.py):
`data: {chunk}` SSE without event names, tool-call deltas keyed by `index`, a usage-only final
chunk when `stream_options.include_usage` is set, then `data: [DONE]`. Thinking text is sent as
`reasoning_content`, the field OpenAI-compatible servers (vLLM, DeepSeek) use.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

from .script import Fault, Planned, arg_chunks, embedding, plan, tokens
from .server import Exchange, FakeServer

_CREATED = 1_700_000_000
_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: {key}."),
    403: ("permission_error", None, "You are not allowed to sample from this model."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


class FakeOpenAIServer(FakeServer):
    """Point `AsyncOpenAI(base_url=server.base_url)` at it (the `/v1` prefix is in base_url)."""

    models = ("gpt-fake", "text-embedding-fake")
    embedding_dimensions = 8

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def handle(self, ex: Exchange) -> None:
        route = (ex.record.method, ex.record.path)
        if route == ("POST", "/v1/chat/completions"):
            self._chat(ex)
        elif route == ("POST", "/v1/embeddings"):
            if self.before_body(ex):
                self._embeddings(ex)
        elif route == ("GET", "/v1/models"):
            if self.before_body(ex):
                data = [
                    {"id": m, "object": "model", "created": _CREATED, "owned_by": "fake"}
                    for m in self.models
                ]
                ex.send_json(200, {"object": "list", "data": data}, _headers(ex))
        else:
            self.send_error(ex, 404, None)

    def error_event(self, fault: Fault) -> tuple[str | None, str]:
        kind, code, message = _ERRORS.get(fault.status, _ERRORS[500])
        error = {"message": message, "type": kind, "param": None, "code": code}
        return None, json.dumps({"error": error})

    def send_error(self, ex: Exchange, status: int, fault: Fault | None) -> None:
        kind, code, message = _ERRORS.get(status, ("server_error", None, "Internal server error."))
        if fault is not None and fault.message:
            message = fault.message
        headers = _headers(ex)
        if fault is not None and fault.retry_after is not None:
            value = fault.retry_after
            headers["retry-after"] = str(int(value)) if float(value).is_integer() else str(value)
        # Like the real API, a rejected key is echoed masked: first 3 and last 4 characters.
        key = _bearer(ex.record.headers)
        message = message.replace(
            "{key}", f"{key[:3]}{'*' * 8}{key[-4:]}" if len(key) > 8 else "***"
        )
        error = {"message": message, "type": kind, "param": None, "code": code}
        ex.send_json(status, {"error": error}, headers)

    def _chat(self, ex: Exchange) -> None:
        body = ex.record.body if isinstance(ex.record.body, dict) else {}
        messages = body.get("messages") or []
        fmt = body.get("response_format") or {}
        schema: Any = None
        if fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
        elif fmt.get("type") == "json_object":
            schema = {"type": "object", "properties": {"echo": {"type": "string"}}}
        planned = plan(
            self.next_reply(),
            prompt=_last_user_text(messages),
            input_words=len(tokens(" ".join(_text(m.get("content")) for m in messages))),
            max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
            json_schema=schema,
        )
        model = str(body.get("model", "gpt-fake"))
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(ex, planned, model, include_usage=include_usage)
        elif self.before_body(ex):
            ex.send_json(200, _completion(ex, planned, model), _headers(ex))

    def _stream(self, ex: Exchange, planned: Planned, model: str, *, include_usage: bool) -> None:
        ex.start_stream(_headers(ex))
        if not self.before_first_event(ex):
            return

        def chunk(delta: dict[str, Any], finish: str | None = None, *, token: bool = False) -> bool:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            payload = _chunk(ex, model, [choice], include_usage)
            return ex.send_event(json.dumps(payload), token=token) and (
                not token or ex.pace(self.token_delay)
            )

        if not chunk({"role": "assistant", "content": "", "refusal": None}):
            return
        for piece in tokens(planned.thinking):
            if not chunk({"reasoning_content": piece}, token=True):
                return
        for piece in tokens(planned.text):
            if not chunk({"content": piece}, token=True):
                return
        for i, (call_id, name, arguments) in enumerate(planned.tool_calls):
            head = {
                "index": i,
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            if not chunk({"tool_calls": [head]}):
                return
            for piece in arg_chunks(arguments):
                if not chunk(
                    {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}, token=True
                ):
                    return
        if not chunk({}, planned.finish):
            return
        if include_usage:
            final = {**_chunk(ex, model, [], include_usage), "usage": _usage(planned)}
            if not ex.send_event(json.dumps(final)):
                return
        if ex.send_event("[DONE]"):
            ex.end_stream()

    def _embeddings(self, ex: Exchange) -> None:
        body = ex.record.body if isinstance(ex.record.body, dict) else {}
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs or []]
        dims = int(body.get("dimensions") or self.embedding_dimensions)
        data = []
        for i, text in enumerate(texts):
            vector: Any = embedding(text, dims)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        used = sum(len(tokens(t)) for t in texts)
        payload = {
            "object": "list",
            "data": data,
            "model": str(body.get("model", "text-embedding-fake")),
            "usage": {"prompt_tokens": used, "total_tokens": used},
        }
        ex.send_json(200, payload, _headers(ex))


def _completion(ex: Exchange, planned: Planned, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": planned.text or None,
        "refusal": None,
    }
    if planned.thinking:
        message["reasoning_content"] = planned.thinking
    if planned.tool_calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            for call_id, name, arguments in planned.tool_calls
        ]
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": planned.finish}
    return {
        "id": f"chatcmpl-fake{ex.record.number:04d}",
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "choices": [choice],
        "usage": _usage(planned),
        "system_fingerprint": "fp_fake",
    }


def _chunk(
    ex: Exchange, model: str, choices: list[dict[str, Any]], include_usage: bool
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": f"chatcmpl-fake{ex.record.number:04d}",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": choices,
    }
    if include_usage:
        payload["usage"] = None
    return payload


def _usage(planned: Planned) -> dict[str, Any]:
    """OpenAI counts cached prompt tokens inside prompt_tokens, unlike Anthropic."""
    prompt = planned.input_tokens + planned.cache_read_tokens + planned.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": planned.output_tokens,
        "total_tokens": prompt + planned.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": planned.cache_read_tokens,
            "cache_write_tokens": planned.cache_write_tokens,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {"reasoning_tokens": len(tokens(planned.thinking))},
    }


def _headers(ex: Exchange) -> dict[str, str]:
    return {"x-request-id": f"req_fake{ex.record.number:04d}"}


def _bearer(headers: dict[str, str]) -> str:
    return headers.get("authorization", "").removeprefix("Bearer ").strip()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _last_user_text(messages: list[Any]) -> str:
    """The prompt to echo: the last user message, or the last tool result after it."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") in {"user", "tool"}:
            return _text(message.get("content"))
    return ""
