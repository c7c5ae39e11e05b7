"""Helpers for tests that call the gateway through its Django glue (`llm_chat`, the CLI).

The glue builds provider clients once per process, so a test that changes keys or base URLs
rebuilds them before and after (`gateway_settings`). Redis is shared by every test of a session:
prompts are made unique so the exact cache never answers across tests, and budget counters of
throwaway workspaces are deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
from django.conf import settings
from django.test import override_settings

from apps.llm.config import reset_providers
from apps.llm.core.context import Actor
from apps.llm.core.types import ChatRequest, Message
from apps.workspaces.models import User
from tests.asgi_server import run_committed

T = TypeVar("T")

# The settings a test run starts from: no platform keys, so every alias answers offline.
NO_PLATFORM_KEYS: dict[str, Any] = {
    "ANTHROPIC_API_KEY": "",
    "ANTHROPIC_BASE_URL": "",
    "OPENAI_API_KEY": "",
    "OPENAI_BASE_URL": "",
    "LLM_OPENAI_COMPATIBLE_BASE_URL": "",
}


@contextmanager
def gateway_settings(**overrides: Any) -> Iterator[None]:
    """Settings for the glue, with provider clients rebuilt on entry and exit. The local model
    answers at once (its realistic pacing only slows tests down) unless overridden."""
    values = {**NO_PLATFORM_KEYS, "LLM_LOCAL_TOKENS_PER_SECOND": 0, **overrides}
    with override_settings(**values):
        reset_providers()
        try:
            yield
        finally:
            reset_providers()


def unique(text: str) -> str:
    """`text` with a suffix no other test uses: the exact cache must not answer it."""
    return f"{text} (case {uuid.uuid4().hex[:10]})"


def ask(text: str, *, alias: str = "smart", **options: Any) -> ChatRequest:
    return ChatRequest(alias=alias, messages=(Message("user", text),), **options)


def user_actor(user: User) -> Actor:
    return Actor("user", str(user.pk))


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def forget_redis_keys(pattern: str, client: redis.Redis | None = None) -> int:
    """Delete the keys matching `pattern` (e.g. "acme:*": a workspace's credit hash, budget and
    rate-limit counters, exact cache, Django cache), found by SCAN and deleted in batches;
    return how many. Never FLUSHDB: other processes' keys stay."""
    client = client or redis_client()
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) == 500:
            deleted += int(client.delete(*batch))
            batch.clear()
    if batch:
        deleted += int(client.delete(*batch))
    return deleted


@contextmanager
def cleared_redis_namespace(*schemas: str) -> Iterator[redis.Redis]:
    """The Redis keys of `schemas` deleted before and after the block, so counters, credit
    hashes and caches start empty as in a new workspace — without migrating a new schema.
    Yields a client on this process's Redis."""
    client = redis_client()
    try:
        for schema in schemas:
            forget_redis_keys(f"{schema}:*", client)
        yield client
        for schema in schemas:
            forget_redis_keys(f"{schema}:*", client)
    finally:
        client.close()


def redis_contents(client: redis.Redis | None = None) -> bytes:
    """Every key and every value in Redis, whatever their type, as one blob to search."""
    client = client or redis_client()
    parts: list[Any] = []
    for key in client.scan_iter(count=1000):
        parts.append(key)
        kind = client.type(key)
        if kind == b"string":
            parts.append(client.get(key))
        elif kind == b"list":
            parts += client.lrange(key, 0, -1)
        elif kind == b"hash":
            parts += [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == b"set":
            parts += client.smembers(key)
        elif kind == b"zset":
            parts += client.zrange(key, 0, -1)
        elif kind == b"stream":
            for _, fields in client.xrange(key) or []:
                parts += [b for pair in (fields or {}).items() for b in pair]
    return b"\n".join(p if isinstance(p, bytes) else str(p).encode() for p in parts)


# Writes that commit at once (what `pg_dump` or another process sees); callers delete them.
committed = run_committed
