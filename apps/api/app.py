"""The /v1 API on the public host (OpenAI-compatible endpoints, `/v1/outcomes` and
`/v1/documents`), as a plain ASGI app in front of Django.

Why not a Django view: a request through Django's ASGI handler crosses to a thread and back
several times (request_started / request_finished signals, sync middleware, response.close),
each a few hundred microseconds on a small machine and serialised on one thread, and
django-tenants' middleware resolves the host with a query. The API needs none of it: the key
names the workspace. So `/v1/` is answered here, fully async; the only thread hop is the key
lookup (`principal.authenticate`, one worker-thread call with three small queries). Every
other path goes to Django untouched.

Every answer is JSON (or SSE for `stream: true`): errors use OpenAI's shape and status codes,
and anything unexpected is a JSON 500 that names the request id, never an HTML page.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from asgiref.sync import sync_to_async
from django.conf import settings

from apps.agents.completions import agent_slugs, is_agent_model
from apps.llm.services import (
    DoneEvent,
    EmbedRequest,
    ErrorEvent,
    GatewayError,
    TokenEvent,
    ToolUseEvent,
    allm_chat,
    allm_embed,
    llm_stream,
    routing_table,
)

from . import wire
from .agents import AgentStep, agent_completion
from .documents import (
    create_document,
    delete_document,
    get_document,
    list_documents,
    search_documents,
)
from .outcomes import create_outcome, get_outcome, list_outcomes
from .principal import Principal, api_key_for, authenticate, in_db, request_counted
from .request import ClientGone, Receive, Request, Scope, Send
from .routing import Router

log = structlog.get_logger(__name__)

ASGIApp = Callable[..., Awaitable[None]]

_authenticate = sync_to_async(authenticate, thread_sensitive=False)
_api_key_for = sync_to_async(api_key_for, thread_sensitive=False)


class OpenAIApi:
    """ASGI middleware: answers `/v1/…` on the public hosts, passes everything else on."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.router = Router(
            {
                ("POST", "/v1/chat/completions"): chat_completions,
                ("POST", "/v1/embeddings"): embeddings,
                ("GET", "/v1/models"): list_models,
                ("POST", "/v1/outcomes"): create_outcome,
                ("GET", "/v1/outcomes"): list_outcomes,
                ("GET", "/v1/outcomes/{outcome_id}"): get_outcome,
                ("POST", "/v1/documents"): create_document,
                ("GET", "/v1/documents"): list_documents,
                ("POST", "/v1/documents/search"): search_documents,
                ("GET", "/v1/documents/{document_id}"): get_document,
                ("DELETE", "/v1/documents/{document_id}"): delete_document,
            }
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            if not _public(scope):
                raise wire.ApiError(
                    404,
                    f"The API is served on the public host: use {settings.SITE_URL}/v1 as the "
                    "base URL (the key names the workspace).",
                    code="wrong_host",
                )
            route, request.path_params = self.router.resolve(scope["method"], scope["path"])
            await route(request)
        except wire.ApiError as exc:
            await request.json(exc.status, exc.body(), exc.headers)
        except ClientGone:
            return
        except Exception:
            log.exception("api.unexpected_error", request_id=request.id, path=scope["path"])
            error = wire.ApiError(
                500,
                f"The server had an error processing your request (request id {request.id}).",
                type_="server_error",
                code="internal_error",
            )
            await request.json(500, error.body())


def _public(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin1").rsplit(":", 1)[0] if not value.startswith(b"[") else ""
            return host in settings.PUBLIC_HOSTS
    return False


async def _principal(request: Request, *, need: str, feature: str) -> Principal:
    return await _authenticate(
        request.headers.get("authorization", ""), need=need, feature=feature, request_id=request.id
    )


# --- endpoints ------------------------------------------------------------------------------


async def chat_completions(request: Request) -> None:
    raw = await request.body()
    payload = wire.parse_json(raw)
    model = payload.get("model") if isinstance(payload, dict) else None
    if isinstance(model, str) and is_agent_model(model):  # an agent: its loop, our tools
        principal = await _principal(request, need="agents", feature="api.agent")
        body = wire.chat_body(payload)
        chat = wire.chat_request(body, request_id=request.id)
        await agent_completion(request, principal, body, chat, stream=_stream)
        return
    principal = await _principal(request, need="chat", feature="api.chat")
    body = wire.chat_body(payload)
    chat = wire.chat_request(body, request_id=request.id)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = llm_stream(scope=principal.scope, request=chat, clock=request.clock)
        await _stream(request, events, chat.alias, include_usage=include_usage)
        return
    try:
        reply = await allm_chat(scope=principal.scope, request=chat, clock=request.clock)
    except GatewayError as exc:
        raise wire.gateway_error(exc) from None
    await request.json(200, wire.completion(reply, created=request.created))


async def _stream(
    request: Request, events: AsyncIterator[Any], alias: str, *, include_usage: bool
) -> None:
    """SSE. Errors before the first event are plain JSON errors (the status still says what
    went wrong); after it, an error chunk and no [DONE]. A client that disconnects cancels the
    upstream stream, which settles exactly the tokens produced. An agent's tool steps go out
    as `aisaas.agent_step` chunks."""
    try:
        first = await anext(events)
    except GatewayError as exc:
        await events.aclose()  # type: ignore[attr-defined]
        raise wire.gateway_error(exc) from None
    chunks = wire.Chunks(request_id=request.id, alias=alias, created=request.created)

    async def pump() -> None:
        await request.start(200, "text/event-stream", {"x-accel-buffering": "no"})
        await _send_chunk(request, chunks.role())
        async for event in _chain(first, events):
            if isinstance(event, TokenEvent):
                await _send_chunk(request, chunks.token(event.text))
            elif isinstance(event, ToolUseEvent):
                await _send_chunk(request, chunks.tool_use(event.call))
            elif isinstance(event, AgentStep):
                await _send_chunk(request, chunks.step(event.frame))
            elif isinstance(event, ErrorEvent):
                error = wire.ApiError(502, event.message, type_="api_error", code=event.code)
                await _send_chunk(request, error.body())
                await request.write(b"", more=False)  # no [DONE]: the answer is incomplete
                return
            elif isinstance(event, DoneEvent):
                await _send_chunk(request, chunks.finish(event.reason))
                if include_usage:
                    await _send_chunk(request, chunks.usage(event.response, event.usage))
        await request.write(b"data: [DONE]\n\n", more=False)

    streaming = asyncio.ensure_future(pump())
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


async def _chain(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for event in rest:
        yield event


async def _send_chunk(request: Request, payload: dict[str, Any]) -> None:
    await request.write(b"data: " + json.dumps(payload).encode() + b"\n\n", more=True)


async def _wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def embeddings(request: Request) -> None:
    raw = await request.body()
    principal = await _principal(request, need="embeddings", feature="api.embeddings")
    body = wire.embedding_body(wire.parse_json(raw))
    inputs = wire.embed_inputs(body)
    try:
        reply = await allm_embed(
            scope=principal.scope, request=EmbedRequest(alias=body.model, inputs=inputs)
        )
    except GatewayError as exc:
        raise wire.gateway_error(exc) from None
    await request.json(200, wire.embeddings(reply, alias=body.model, encoding=body.encoding_format))


async def list_models(request: Request) -> None:
    api_key = await _api_key_for(request.headers.get("authorization", ""))
    await request_counted(api_key)
    kinds = []
    if "chat" in api_key.scopes:
        kinds.append("chat")
    if "embeddings" in api_key.scopes:
        kinds.append("embed")
    table = routing_table()
    aliases = sorted(a for kind in kinds for a in table.names(kind))
    if "agents" in api_key.scopes:
        slugs = await in_db(lambda: agent_slugs(workspace=api_key.workspace))
        aliases += [f"agent:{slug}" for slug in slugs]
    await request.json(200, wire.models(aliases))
