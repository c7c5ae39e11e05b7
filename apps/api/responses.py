"""`/v1/responses`: OpenAI's Responses API over the chat-completions path (wire.responses_in
turns the body into a chat body, wire.responses_out the reply into a `response`). `model: "agent:<slug>"`
runs that agent as `/v1/chat/completions` does. With `store` (OpenAI's default) the response
and the conversation it ends are kept in the workspace's schema for the plan's trace retention:
`GET` / `DELETE /v1/responses/{id}` and `previous_response_id` read them, and another
workspace's id is a 404."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from apps.agents.completions import is_agent_model
from apps.billing.plans import plan_get
from apps.llm.services import (
    ChatResponse,
    DoneEvent,
    ErrorEvent,
    GatewayError,
    TokenEvent,
    ToolUseEvent,
    access_stored_response,
    allm_chat,
    llm_stream,
    stored_response_delete,
    stored_response_save,
)

from . import sse, wire
from .admission import principal_for
from .agents import AgentStep, agent_events, agent_reply
from .catalog import model_alias
from .principal import Principal, in_db
from .request import Request

Item = dict[str, Any]
_READ_SCOPES = ("chat", "agents")
_PARAMS = {"response_id": "previous_response_id"}


async def create_response(request: Request) -> None:
    raw = await request.body()
    payload = wire.parse_json(raw)
    agent = isinstance(payload.get("model"), str) and is_agent_model(payload["model"])
    principal = await principal_for(
        request,
        need="agents" if agent else "chat",
        feature="api.agent" if agent else "api.responses",
    )
    body = wire.response_body(payload)
    wire.responses_unsupported(body)
    items = wire.response_input_items(body)
    previous: list[Item] = []
    if body.previous_response_id is not None:
        workspace, response_id = principal.api_key.workspace, body.previous_response_id
        stored = await in_db(
            lambda: access_stored_response(workspace=workspace, response_id=response_id),
            params=_PARAMS,
        )
        previous = list(stored.items)
    conversation = previous + items
    chat = wire.chat_request(wire.responses_as_chat(body, conversation), request_id=request.id)
    skeleton = wire.Skeleton(response_id=wire.new_id("resp"), body=body, created_at=request.created)
    events: AsyncIterator[Any]
    if agent:
        agent_stream = await agent_events(principal, body.model, chat)
        events = agent_stream
        if not body.stream:
            reply, steps = await agent_reply(agent_stream, body.model)
            await _answer(request, principal, skeleton, conversation, reply, steps=steps)
            return
    else:
        chat = replace(chat, alias=await model_alias(principal, body.model))
        if not body.stream:
            try:
                reply = await allm_chat(scope=principal.scope, request=chat, clock=request.clock)
            except GatewayError as exc:
                raise wire.gateway_error(exc) from None
            await _answer(request, principal, skeleton, conversation, reply)
            return
        events = llm_stream(scope=principal.scope, request=chat, clock=request.clock)
    await _stream(request, principal, skeleton, conversation, events)


async def _answer(
    request: Request,
    principal: Principal,
    skeleton: wire.Skeleton,
    conversation: list[Item],
    reply: ChatResponse,
    *,
    steps: list[dict[str, Any]] | None = None,
) -> None:
    status = wire.status_of(reply.finish_reason)
    output = wire.output_items(reply.text, reply.tool_calls, incomplete=status == "incomplete")
    response = skeleton.response(status=status, output=output, u=reply.usage, reply=reply)
    if steps is not None:
        response["aisaas"]["agent_steps"] = steps
    await _store(principal, skeleton, conversation, response)
    await request.json(200, response)


async def _stream(
    request: Request,
    principal: Principal,
    skeleton: wire.Skeleton,
    conversation: list[Item],
    events: AsyncIterator[Any],
) -> None:
    """The typed events: response.created, output items with their text and argument
    deltas, then response.completed (stored first, so a client may chain on it at once)."""
    built = wire.ResponseEvents(skeleton)
    steps: list[dict[str, Any]] = []

    async def pump(stream: AsyncIterator[Any]) -> None:
        await sse.start(request)
        await _send(request, built.created())
        async for event in stream:
            if isinstance(event, TokenEvent):
                await _send(request, built.text(event.text))
            elif isinstance(event, ToolUseEvent):
                await _send(request, built.tool_call(event.call))
            elif isinstance(event, AgentStep):
                steps.append(event.frame)
            elif isinstance(event, ErrorEvent):
                await _send(request, built.failed(event.message, event.code))
                await sse.end(request)
                return
            elif isinstance(event, DoneEvent):
                closing, response = built.finished(event.reason, event.usage, event.response)
                if steps and response.get("aisaas") is not None:
                    response["aisaas"]["agent_steps"] = steps
                await _store(principal, skeleton, conversation, response)
                await _send(request, closing)
        await sse.end(request)

    await sse.serve(request, events, pump)


async def _send(request: Request, events: list[tuple[str, dict[str, Any]]]) -> None:
    for name, payload in events:
        await sse.send(request, payload, event=name)


async def _store(
    principal: Principal,
    skeleton: wire.Skeleton,
    conversation: list[Item],
    response: dict[str, Any],
) -> None:
    """Keep the response and the conversation it ends, unless the request said `store:
    false`; for the workspace plan's trace retention (its masked tier, 30 days on every
    plan today)."""
    if skeleton.body.store is False:
        return
    api_key = principal.api_key
    items = conversation + wire.conversation_items(response["output"])

    def save() -> None:
        days = plan_get(code=api_key.workspace.plan).masked_retention_days
        stored_response_save(
            workspace=api_key.workspace,
            response_id=skeleton.response_id,
            model=skeleton.body.model,
            items=items,
            body=response,
            retention_days=days,
            api_key_prefix=api_key.prefix,
        )

    await in_db(save)


async def _reader(request: Request) -> Principal:
    principal = await principal_for(request, need=None, feature="api.responses", counted=True)
    if not set(_READ_SCOPES) & set(principal.api_key.scopes or ()):
        raise wire.ApiError(
            403,
            f"The API key {principal.api_key.prefix}… may not read responses; it needs the "
            "chat or agents scope.",
            type_="permission_error",
            code="insufficient_scope",
        )
    return principal


async def get_response(request: Request) -> None:
    principal = await _reader(request)
    workspace, response_id = principal.api_key.workspace, request.path_params["response_id"]
    stored = await in_db(
        lambda: access_stored_response(workspace=workspace, response_id=response_id)
    )
    await request.json(200, stored.body)


async def delete_response(request: Request) -> None:
    principal = await _reader(request)
    workspace, response_id = principal.api_key.workspace, request.path_params["response_id"]
    await in_db(lambda: stored_response_delete(workspace=workspace, response_id=response_id))
    await request.json(200, {"id": response_id, "object": "response", "deleted": True})
