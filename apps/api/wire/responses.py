"""The gateway's replies → OpenAI's shapes: completions, stream chunks, embeddings, models."""

from __future__ import annotations

import base64
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

from apps.llm.services import ChatResponse, EmbedResponse, ToolCall, Usage, token_pieces

_FINISH = {"cancelled": "stop", "truncated": "length", "error": "stop"}
_LEGACY_FINISH = {**_FINISH, "tool_calls": "function_call"}


def finish_reason(reason: str, *, legacy: bool = False) -> str:
    """OpenAI's finish_reason for the gateway's (`function_call` for legacy functions)."""
    return (_LEGACY_FINISH if legacy else _FINISH).get(reason, reason)


def argument_pieces(call: ToolCall) -> list[str]:
    """A call's arguments as JSON text, split at token boundaries the way providers stream
    them (the gateway hands over whole calls; clients expect `arguments` in pieces)."""
    return token_pieces(json.dumps(call.arguments)) or ["{}"]


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


def completion(reply: ChatResponse, *, created: int, legacy: bool = False) -> dict[str, Any]:
    """`legacy`: the request used `functions`, so the answer uses `function_call`."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.tool_calls and legacy:
        message["function_call"] = tool_call(reply.tool_calls[0])["function"]
    elif reply.tool_calls:
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
                "finish_reason": finish_reason(reply.finish_reason, legacy=legacy),
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
    legacy: bool = False  # the request used `functions`: calls go out as `function_call`
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

    def tool_use(self, call: ToolCall) -> list[dict[str, Any]]:
        """A call as providers stream it: a first chunk with its id and name and empty
        arguments, then the arguments in pieces under the same index."""
        index = self.tool_calls
        self.tool_calls += 1
        pieces = argument_pieces(call)
        first: dict[str, Any]
        rest: list[dict[str, Any]]
        if self.legacy:
            first = {"function_call": {"name": call.name, "arguments": ""}}
            rest = [{"function_call": {"arguments": p}} for p in pieces]
        else:
            head = {"index": index, "id": call.id, "type": "function"}
            first = {"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]}
            rest = [
                {"tool_calls": [{"index": index, "function": {"arguments": p}}]} for p in pieces
            ]
        return [self._chunk(first), *(self._chunk(delta) for delta in rest)]

    def step(self, event: dict[str, Any]) -> dict[str, Any]:
        """An agent's tool step (ours, already executed): an empty delta, the step under
        `aisaas` — OpenAI clients ignore it, ours can show it."""
        chunk = self._chunk({})
        chunk["aisaas"] = {"agent_step": event}
        return chunk

    def finish(self, reason: str) -> dict[str, Any]:
        return self._chunk({}, finish_reason(reason, legacy=self.legacy))

    def usage(self, reply: ChatResponse | None, u: Usage) -> dict[str, Any]:
        chunk = self._chunk({})
        chunk["choices"] = []
        chunk["usage"] = usage(u)
        if reply is not None:
            chunk["aisaas"] = extension(reply)
        return chunk


def shortened(vector: tuple[float, ...], dimensions: int | None) -> tuple[float, ...]:
    """The first `dimensions` values, renormalised to unit length: what OpenAI documents the
    `dimensions` parameter to be for its text-embedding-3 models."""
    if dimensions is None or dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(sum(x * x for x in head)) or 1.0
    return tuple(x / norm for x in head)


def embeddings(
    reply: EmbedResponse, *, alias: str, encoding: str, dimensions: int | None = None
) -> dict[str, Any]:
    def encode(vector: tuple[float, ...]) -> list[float] | str:
        vector = shortened(vector, dimensions)
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
