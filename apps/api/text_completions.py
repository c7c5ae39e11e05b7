"""`POST /v1/completions`: OpenAI's legacy text completions, answered by the chat-completions
path (the prompt as one user turn) and returned as `text_completion` objects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from apps.llm.services import (
    DoneEvent,
    ErrorEvent,
    GatewayError,
    TokenEvent,
    allm_chat,
    llm_stream,
)

from . import sse, wire
from .admission import principal_for
from .catalog import model_alias
from .request import Request


async def text_completions(request: Request) -> None:
    raw = await request.body()
    principal = await principal_for(request, need="chat", feature="api.completions")
    body = wire.completion_as_chat(wire.completion_body(wire.parse_json(raw)))
    chat = wire.chat_request(body, request_id=request.id)
    chat = replace(chat, alias=await model_alias(principal, body.model))
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = llm_stream(scope=principal.scope, request=chat, clock=request.clock)
        chunks = wire.TextChunks(request_id=request.id, model=body.model, created=request.created)

        async def pump(stream: AsyncIterator[Any]) -> None:
            await sse.start(request)
            async for event in stream:
                if isinstance(event, TokenEvent):
                    await sse.send(request, chunks.token(event.text))
                elif isinstance(event, ErrorEvent):
                    error = wire.ApiError(502, event.message, type_="api_error", code=event.code)
                    await sse.send(request, error.body())
                    await sse.end(request)
                    return
                elif isinstance(event, DoneEvent):
                    await sse.send(request, chunks.finish(event.reason))
                    if include_usage:
                        await sse.send(request, chunks.usage(event.response, event.usage))
            await sse.done(request)

        await sse.serve(request, events, pump)
        return
    try:
        reply = await allm_chat(scope=principal.scope, request=chat, clock=request.clock)
    except GatewayError as exc:
        raise wire.gateway_error(exc) from None
    reply = replace(reply, alias=body.model)
    await request.json(200, wire.text_completion(reply, created=request.created))
