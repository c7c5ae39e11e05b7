"""One /v1 API request as the endpoints see it: headers, body (size-capped), id, clock, path
parameters, and the way the answer goes back."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from apps.llm.services import ProviderClock

from . import wire

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class Request:
    """One API request: its headers, body, id and clock."""

    def __init__(self, scope: Scope, receive: Receive, send: Send):
        self.scope, self.receive, self._send = scope, receive, send
        self.started = time.perf_counter()
        self.headers = {k.decode("latin1").lower(): v.decode("latin1") for k, v in scope["headers"]}
        given = self.headers.get("x-request-id", "")
        self.id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        self.clock = ProviderClock()
        self.created = int(time.time())
        self.path_params: dict[str, str] = {}  # set by the router
        # Headers every answer to this request carries once the key is known: rate limits,
        # and CORS for an origin the key allows (admission.py).
        self.extra_headers: dict[str, str] = {}

    def overhead_ms(self) -> str:
        return f"{(time.perf_counter() - self.started) * 1000 - self.clock.ms:.3f}"

    async def body(self, *, limit: int | None = None, too_large: str = "") -> bytes:
        """The whole body, at most `limit` bytes (API_MAX_BODY_BYTES): a larger one is a 413
        (`too_large` says why) before any of it is read when Content-Length declares it,
        else as soon as the bytes received pass the limit."""
        limit = limit or settings.API_MAX_BODY_BYTES
        refusal = wire.ApiError(
            413,
            too_large or f"The request body is larger than {limit} bytes.",
            code="request_too_large",
        )
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise refusal
        chunks, size = [], 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise refusal
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def start(
        self, status: int, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        headers = {
            "content-type": content_type,
            "x-request-id": self.id,
            "x-aisaas-overhead-ms": self.overhead_ms(),
            "cache-control": "no-store",
            **self.extra_headers,
            **(extra or {}),
        }
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode("latin1")) for k, v in headers.items()],
            }
        )

    async def write(self, body: bytes, *, more: bool) -> None:
        await self._send({"type": "http.response.body", "body": body, "more_body": more})

    async def json(
        self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode()
        await self.start(status, "application/json", extra)
        await self.write(body, more=False)


class ClientGone(Exception):
    """The client disconnected before its request was read."""


Route = Callable[[Request], Awaitable[None]]
