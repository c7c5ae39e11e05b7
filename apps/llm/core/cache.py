"""Idempotency / exact cache (docs/architecture.md, "The gateway").

The key hashes the schema name with the resolved model and everything that shapes the answer
(messages, tools, response schema, parameters), so an entry can never serve another workspace:
their keys differ even for byte-identical requests. Entries live 24 h in Redis.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

import redis.asyncio as aioredis

from .types import ChatRequest, ProviderResponse, ToolCall, Usage

DAY = 86400


def cache_key(
    *, schema: str, provider: str, model: str, request: ChatRequest, max_tokens: int
) -> str:
    """Stable key for the exact cache: schema first, then a hash of the request."""
    shaping = {
        "provider": provider,
        "model": model,
        "messages": [asdict(m) for m in request.messages],
        "tools": [asdict(t) for t in request.tools],
        "tool_choice": request.tool_choice,
        "response_format": asdict(request.response_format) if request.response_format else None,
        "max_tokens": max_tokens,
        "temperature": request.temperature,
        "stop": list(request.stop),
    }
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()
    return f"{schema}:llm:cache:{digest}"


def _encode(response: ProviderResponse) -> str:
    return json.dumps(asdict(response))


def _decode(raw: bytes | str) -> ProviderResponse:
    data: dict[str, Any] = json.loads(raw)
    return ProviderResponse(
        text=data["text"],
        usage=Usage(**data["usage"]),
        model=data["model"],
        finish_reason=data["finish_reason"],
        tool_calls=tuple(ToolCall(**c) for c in data["tool_calls"]),
        thinking=data["thinking"],
        provider_request_id=data["provider_request_id"],
    )


class ExactCache:
    def __init__(self, client: aioredis.Redis, *, ttl: int = DAY):
        self.client = client
        self.ttl = ttl

    async def get(self, key: str) -> ProviderResponse | None:
        raw = await self.client.get(key)
        return _decode(raw) if raw is not None else None

    async def set(self, key: str, response: ProviderResponse) -> None:
        await self.client.set(key, _encode(response), ex=self.ttl)
