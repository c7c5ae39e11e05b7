"""`/v1/chat/completions` with `model: "agent:<slug>"`: the agent loop run server-side for keys
with the `agents` scope (apps/agents/completions.py prepares the turn; apps/agents/loop.py runs
it). The loop's events are folded into OpenAI's shapes: tokens as content, each tool step as an
`aisaas.agent_step` chunk (streaming) or under `aisaas.agent_steps` (JSON), the model calls'
usage summed into one `usage`, the last call's trace in `aisaas`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from apps.agents.completions import AgentTurn, agent_turn
from apps.agents.loop import StepCapReached, ToolFinished, ToolStarted, agent_loop
from apps.llm.services import (
    ChatRequest,
    ChatResponse,
    DoneEvent,
    ErrorEvent,
    GatewayError,
    TokenEvent,
    Usage,
)

from . import wire
from .principal import Principal, in_db
from .request import Request

StreamFn = Callable[..., Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AgentStep:
    frame: dict[str, Any]


async def agent_events(
    principal: Principal, model: str, chat: ChatRequest
) -> AsyncGenerator[Any, None]:
    """The agent `model` names, run over the client's messages in `chat`: its events as the
    API sends them (see `_events`). A refusal (unknown or paused agent, client tools) is the
    API's 4xx."""
    api_key = principal.api_key
    turn = await in_db(
        lambda: agent_turn(workspace=api_key.workspace, api_key=api_key, model=model, request=chat)
    )
    return _events(turn, principal)


async def agent_reply(
    events: AsyncGenerator[Any, None], model: str
) -> tuple[ChatResponse, list[dict[str, Any]]]:
    """The whole answer of an agent run (its text, the usage of every model call, the last
    call's trace) and its tool steps, for a non-streaming request."""
    text: list[str] = []
    steps: list[dict[str, Any]] = []
    done: DoneEvent | None = None
    try:
        async for event in events:
            if isinstance(event, TokenEvent):
                text.append(event.text)
            elif isinstance(event, AgentStep):
                steps.append(event.frame)
            elif isinstance(event, ErrorEvent):
                raise wire.ApiError(502, event.message, type_="api_error", code=event.code)
            elif isinstance(event, DoneEvent):
                done = event
    except GatewayError as exc:
        raise wire.gateway_error(exc) from None
    finally:
        await events.aclose()
    if done is None or done.response is None:
        raise wire.ApiError(502, "The agent ended without an answer.", type_="api_error")
    return replace(done.response, text="".join(text), tool_calls=(), alias=model), steps


async def agent_completion(
    request: Request, principal: Principal, body: Any, chat: ChatRequest, *, stream: StreamFn
) -> None:
    events = await agent_events(principal, body.model, chat)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        await stream(request, events, body.model, include_usage=include_usage)
        return
    reply, steps = await agent_reply(events, body.model)
    completion = wire.completion(reply, created=request.created)
    completion.setdefault("aisaas", {})["agent_steps"] = steps
    await request.json(200, completion)


async def _events(turn: AgentTurn, principal: Principal) -> AsyncGenerator[Any, None]:
    """The loop's events as the API sends them: tokens and errors as they come, tool steps as
    AgentStep, and one DoneEvent at the end with the usage and cost of every model call."""
    scope = replace(
        principal.scope,
        feature="api.agent",
        extra_scopes=(*principal.scope.extra_scopes, *turn.scopes),
    )
    usage = Usage()
    cost = 0
    last: ChatResponse | None = None
    loop = agent_loop(
        scope=scope,
        request=turn.request,
        ctx=turn.ctx,
        tools=turn.tools,
        max_steps=turn.max_steps,
        park=False,  # the client can't be resumed: the model says what waits for approval
    )
    try:
        async for event in loop:
            if isinstance(event, DoneEvent):
                usage = usage + event.usage
                if event.response is not None:
                    last, cost = event.response, cost + event.response.cost_micros
            elif isinstance(event, ToolStarted):
                yield AgentStep(
                    {
                        "type": "tool_call",
                        "step": event.step,
                        "call_id": event.call.id,
                        "name": event.call.name,
                        "arguments": event.call.arguments,
                    }
                )
            elif isinstance(event, ToolFinished):
                yield AgentStep(
                    {
                        "type": "tool_result",
                        "step": event.step,
                        "call_id": event.call.id,
                        "name": event.call.name,
                        "status": event.outcome.status,
                        "summary": event.outcome.summary,
                    }
                )
            elif isinstance(event, StepCapReached):
                yield ErrorEvent(
                    message=f"The agent stopped after {event.steps} steps without a final answer.",
                    code="agent_step_limit",
                )
                return
            else:
                yield event
    finally:
        await loop.aclose()  # type: ignore[attr-defined]
    response = replace(last, usage=usage, cost_micros=cost) if last is not None else None
    yield DoneEvent(usage=usage, reason="stop", response=response)
