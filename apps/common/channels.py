"""Channels glue: origin check, Host parsing, tenant-aware DB calls (the workspace itself is
resolved from the Host by apps/workspaces/channels.py).

The database schema does not cross threads, so every `database_sync_to_async` call that touches
workspace data enters the scope's schema itself (`in_workspace_schema`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django_tenants.utils import get_public_schema_name, schema_context

from .jsonlimits import JsonTooDeepError, json_depth_check

P = ParamSpec("P")
T = TypeVar("T")
Scope = dict[str, Any]
ASGIApp = Callable[
    [Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Awaitable[None]
]


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin1"))
    return None


def hostname(host_header: str | None) -> str:
    return (
        (host_header or "").rsplit(":", 1)[0].lower()
        if host_header and not host_header.startswith("[")
        else ""
    )


async def deny(send: Callable[..., Awaitable[Any]]) -> None:
    await send({"type": "websocket.close", "code": 4403})


class SameOriginValidator:
    """Refuse a WebSocket whose Origin is not exactly the origin of the host it connects to:
    the site's scheme (SITE_URL) and that Host (no cross-workspace, third-party or plain-http
    page may open a socket with the user's cookies)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            origin = header(scope, b"origin")
            host = header(scope, b"host")
            expected = f"{settings.SITE_SCHEME}://{host}".lower() if host else None
            if not origin or origin.lower().rstrip("/") != expected:
                await receive()  # the connect event
                await deny(send)
                return
        await self.app(scope, receive, send)


class JsonDepthGuard:
    """Answer a socket frame nested deeper than MAX_JSON_DEPTH with an error event, before any
    consumer parses it (a 100,000-deep frame overflowed the chat consumer's parser, and the
    socket closed with 1011). The socket stays open."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return

        async def guarded() -> dict[str, Any]:
            while True:
                event: dict[str, Any] = await receive()
                if event["type"] != "websocket.receive":
                    return event
                try:
                    json_depth_check(event.get("text") or event.get("bytes") or "")
                except JsonTooDeepError as exc:
                    error = {"type": "error", "message": str(exc), "retryable": False}
                    await send({"type": "websocket.send", "text": json.dumps(error)})
                    continue
                return event

        await self.app(scope, guarded, send)


def in_workspace_schema(func: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """`database_sync_to_async` that runs `func(workspace, ...)` inside the workspace's schema."""

    @wraps(func)
    def inner(workspace: Any, *args: Any, **kwargs: Any) -> T:
        schema = workspace.schema_name if workspace else get_public_schema_name()
        with schema_context(schema):
            return func(workspace, *args, **kwargs)

    # Not thread-sensitive: a consumer has no per-connection thread context, so the default
    # would queue every socket's database calls on one thread for the whole process (measured:
    # ~100 concurrent chat streams). Each call sets its schema itself, so any thread will do.
    return database_sync_to_async(inner, thread_sensitive=False)
