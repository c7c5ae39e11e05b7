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

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import structlog
from django.conf import settings

from apps.agents.completions import is_agent_model
from apps.llm.services import (
    DoneEvent,
    EmbedRequest,
    ErrorEvent,
    GatewayError,
    TokenEvent,
    ToolUseEvent,
    allm_chat,
    allm_embed,
    embedding_model_for,
    llm_stream,
)

from . import sse, wire
from .admission import preflight, principal_for
from .agents import AgentStep, agent_completion
from .catalog import get_model, list_models, model_alias
from .documents import (
    create_document,
    delete_document,
    get_document,
    list_documents,
    search_documents,
)
from .outcomes import create_outcome, get_outcome, list_outcomes
from .request import ClientGone, Receive, Request, Scope, Send
from .responses import create_response, delete_response, get_response
from .routing import Router
from .runs import cancel_run, create_run, get_run, run_events
from .text_completions import text_completions

log = structlog.get_logger(__name__)

ASGIApp = Callable[..., Awaitable[None]]


class OpenAIApi:
    """ASGI middleware: answers `/v1/…` on the public hosts, passes everything else on."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.router = Router(
            {
                ("POST", "/v1/chat/completions"): chat_completions,
                ("POST", "/v1/completions"): text_completions,
                ("POST", "/v1/responses"): create_response,
                ("GET", "/v1/responses/{response_id}"): get_response,
                ("DELETE", "/v1/responses/{response_id}"): delete_response,
                ("POST", "/v1/embeddings"): embeddings,
                ("GET", "/v1/models"): list_models,
                ("GET", "/v1/models/{model_id}"): get_model,
                ("POST", "/v1/outcomes"): create_outcome,
                ("GET", "/v1/outcomes"): list_outcomes,
                ("GET", "/v1/outcomes/{outcome_id}"): get_outcome,
                ("POST", "/v1/agents/{slug}/runs"): create_run,
                ("GET", "/v1/agents/{slug}/runs/{run_id}"): get_run,
                ("POST", "/v1/agents/{slug}/runs/{run_id}/cancel"): cancel_run,
                ("GET", "/v1/agents/{slug}/runs/{run_id}/events"): run_events,
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
            if scope["method"] == "OPTIONS":
                methods = self.router.methods(scope["path"])
                if methods:
                    await preflight(request, methods)
                    return
            route, request.path_params = self.router.resolve(scope["method"], scope["path"])
            await route(request)
        except wire.ApiError as exc:
            await request.json(exc.status, exc.body(), exc.headers)
        except GatewayError as exc:  # one a route let through, e.g. Redis down (503)
            error = wire.gateway_error(exc)
            await request.json(error.status, error.body(), error.headers)
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


# --- endpoints ------------------------------------------------------------------------------


async def chat_completions(request: Request) -> None:
    raw = await request.body()
    payload = wire.parse_json(raw)
    model = payload.get("model") if isinstance(payload, dict) else None
    if isinstance(model, str) and is_agent_model(model):  # an agent: its loop, our tools
        principal = await principal_for(request, need="agents", feature="api.agent")
        body = wire.chat_body(payload)
        chat = wire.chat_request(body, request_id=request.id)
        await agent_completion(request, principal, body, chat, stream=_stream)
        return
    principal = await principal_for(request, need="chat", feature="api.chat")
    body = wire.chat_body(payload)
    legacy = wire.uses_legacy_functions(body)
    chat = wire.chat_request(body, request_id=request.id)
    chat = replace(chat, alias=await model_alias(principal, body.model))
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = llm_stream(scope=principal.scope, request=chat, clock=request.clock)
        await _stream(request, events, body.model, include_usage=include_usage, legacy=legacy)
        return
    try:
        reply = await allm_chat(scope=principal.scope, request=chat, clock=request.clock)
    except GatewayError as exc:
        raise wire.gateway_error(exc) from None
    reply = replace(reply, alias=body.model)
    await request.json(200, wire.completion(reply, created=request.created, legacy=legacy))


async def _stream(
    request: Request,
    events: AsyncIterator[Any],
    model: str,
    *,
    include_usage: bool,
    legacy: bool = False,
) -> None:
    """A chat completion as `chat.completion.chunk` events: after the first one, an error
    is an error chunk and no [DONE]. Tool calls go out with their arguments in pieces; an
    agent's tool steps as `aisaas.agent_step` chunks."""
    chunks = wire.Chunks(request_id=request.id, alias=model, created=request.created, legacy=legacy)

    async def pump(stream: AsyncIterator[Any]) -> None:
        await sse.start(request)
        await sse.send(request, chunks.role())
        async for event in stream:
            if isinstance(event, TokenEvent):
                await sse.send(request, chunks.token(event.text))
            elif isinstance(event, ToolUseEvent):
                for chunk in chunks.tool_use(event.call):
                    await sse.send(request, chunk)
            elif isinstance(event, AgentStep):
                await sse.send(request, chunks.step(event.frame))
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


async def embeddings(request: Request) -> None:
    raw = await request.body()
    principal = await principal_for(request, need="embeddings", feature="api.embeddings")
    body = wire.embedding_body(wire.parse_json(raw))
    inputs = wire.embed_inputs(body)
    alias = await model_alias(principal, body.model)
    try:
        dimensions = wire.embed_dimensions(body, embedding_model_for(principal.scope, alias))
        reply = await allm_embed(scope=principal.scope, request=EmbedRequest(alias, inputs))
    except GatewayError as exc:
        raise wire.gateway_error(exc) from None
    await request.json(
        200,
        wire.embeddings(
            reply, alias=body.model, encoding=body.encoding_format, dimensions=dimensions
        ),
    )
