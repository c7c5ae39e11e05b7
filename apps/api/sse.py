"""Server-sent events for the streaming endpoints (chat completions, legacy completions,
responses): one place that opens the gateway's stream, pumps it to the client and cancels it
when the client goes away (which settles exactly the tokens produced)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog

from apps.llm.services import GatewayError

from . import wire
from .request import Request

log = structlog.get_logger(__name__)

Pump = Callable[[AsyncIterator[Any]], Awaitable[None]]


async def serve(request: Request, events: AsyncIterator[Any], pump: Pump) -> None:
    """Stream `events` with `pump`, which writes the answer (headers included). An error
    before the first event is a plain JSON error (the status still says what went wrong);
    after it, `pump` reports it in the stream. A client that disconnects cancels the
    upstream stream."""
    try:
        first = await anext(events)
    except GatewayError as exc:
        await events.aclose()  # type: ignore[attr-defined]
        raise wire.gateway_error(exc) from None
    except StopAsyncIteration:
        raise wire.ApiError(502, "The model ended without an answer.", type_="api_error") from None

    streaming = asyncio.ensure_future(pump(_chain(first, events)))
    disconnected = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        await asyncio.wait({streaming, disconnected}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (streaming, disconnected):
            if not task.done():
                task.cancel()
        await asyncio.gather(streaming, disconnected, return_exceptions=True)
        await events.aclose()  # type: ignore[attr-defined]
    if streaming.done() and not streaming.cancelled() and streaming.exception() is not None:
        log.error("api.stream_failed", request_id=request.id, exc_info=streaming.exception())


async def start(request: Request) -> None:
    await request.start(200, "text/event-stream", {"x-accel-buffering": "no"})


async def send(request: Request, payload: dict[str, Any], *, event: str | None = None) -> None:
    """One event: `data: {json}` (with `event: <name>` first when named)."""
    head = f"event: {event}\n".encode() if event else b""
    await request.write(head + b"data: " + json.dumps(payload).encode() + b"\n\n", more=True)


async def done(request: Request) -> None:
    await request.write(b"data: [DONE]\n\n", more=False)


async def end(request: Request) -> None:
    """End the body without [DONE] (the answer is incomplete)."""
    await request.write(b"", more=False)


async def _chain(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for event in rest:
        yield event


async def _wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
