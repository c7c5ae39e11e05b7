"""Channels glue: origin check, Host parsing, tenant-aware DB calls (the workspace itself is
resolved from the Host by apps/workspaces/channels.py).

The database schema does not cross threads, so every `database_sync_to_async` call that touches
workspace data enters the scope's schema itself (`in_workspace_schema`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from django_tenants.utils import get_public_schema_name, schema_context

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
    """Refuse a WebSocket whose Origin is not the host it connects to (no cross-workspace or
    third-party page may open a socket with the user's cookies)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            origin = header(scope, b"origin")
            host = header(scope, b"host")
            origin_host = urlsplit(origin).netloc.lower() if origin else ""
            if not origin or not host or origin_host != host.lower():
                await receive()  # the connect event
                await deny(send)
                return
        await self.app(scope, receive, send)


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
