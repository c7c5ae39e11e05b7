"""The agent loop: model call → tool calls → results back to the model → … → a final answer.

One loop for every surface (chat, /v1 `agent:<slug>`, background runs): it yields the
gateway's stream events of each step (tokens, thinking, status, one `DoneEvent` per model
call) and, between steps, `ToolStarted` / `ToolFinished` around each tool call. It stops at a
final answer (a step without tool calls), at the agent's step cap (`StepCapReached`), when a
call waits for a person's approval (`Parked`: the caller stores the state and resumes it with
`Resume` once decided — nothing is held while waiting), or when
the caller closes it — which closes the model stream in flight (the gateway settles exactly
what was produced) and never leaves a tool half-run (each tool call is one transaction).

Each model call is its own trace; the agent's limits ride in the call scope as budget scopes
(`agent_scopes`), reserved atomically with the workspace's own budgets and credit.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from apps.common.channels import in_workspace_schema
from apps.llm.services import CallScope as LlmScope
from apps.llm.services import (
    ChatRequest,
    DoneEvent,
    Message,
    Scope,
    TokenEvent,
    ToolCall,
    ToolUseEvent,
    llm_stream,
)
from apps.workspaces.models import Workspace

from .models import Agent, ToolAudit
from .tools.registry import ToolContext, ToolSpec
from .tools.runner import ToolOutcome, tool_call


@dataclass(frozen=True, slots=True)
class ToolStarted:
    step: int
    call: ToolCall
    type: str = "tool_call"


@dataclass(frozen=True, slots=True)
class ToolFinished:
    step: int
    call: ToolCall
    outcome: ToolOutcome
    type: str = "tool_result"


@dataclass(frozen=True, slots=True)
class StepCapReached:
    steps: int
    type: str = "step_cap"


@dataclass(frozen=True, slots=True)
class Parked:
    """Some of the step's calls wait for a person: the loop ends here, holding nothing. The
    caller stores `messages` (the conversation so far, their results included) and `held`;
    once every action is decided it resumes with `agent_loop(..., resume=...)`."""

    step: int
    messages: tuple[Message, ...]
    held: tuple[ToolCall, ...]
    type: str = "parked"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The loop's state to store (long runs ask for them): after the model asked for tools
    (`pending`: all of its calls) and after each tool call (`pending`: those still to run).
    Resuming from it calls `pending` first — each with its idempotency key, so a call that ran
    before a crash replays its stored result — then goes on with the next step."""

    step: int
    messages: tuple[Message, ...]
    pending: tuple[ToolCall, ...]
    type: str = "checkpoint"


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a parked loop continues: the stored messages and the calls that waited at `step`
    (they are called again: approved ones run once, refused ones tell the model why)."""

    step: int
    messages: tuple[Message, ...]
    held: tuple[ToolCall, ...]


LoopEvent = object  # a gateway StreamEvent, ToolStarted, ToolFinished, StepCapReached or Parked


def messages_dump(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The loop's messages as JSON (stored with a parked answer or run)."""
    return [
        {
            "role": m.role,
            "content": m.content,
            "tool_calls": [calls_dump(c) for c in m.tool_calls],
            "tool_call_id": m.tool_call_id,
            "name": m.name,
        }
        for m in messages
    ]


def messages_load(data: Sequence[dict[str, Any]]) -> tuple[Message, ...]:
    return tuple(
        Message(
            role=item["role"],
            content=item["content"],
            tool_calls=tuple(calls_load(c) for c in item.get("tool_calls") or ()),
            tool_call_id=item.get("tool_call_id"),
            name=item.get("name"),
        )
        for item in data
    )


def calls_dump(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": call.arguments}


def calls_load(data: dict[str, Any]) -> ToolCall:
    return ToolCall(id=str(data["id"]), name=str(data["name"]), arguments=dict(data["arguments"]))


def agent_scopes(
    agent: Agent,
    *,
    schema: str,
    run_key: str,
    now: float | None = None,
    run_cost_cap: int | None = None,
) -> tuple[Scope, ...]:
    """The agent's limits as budget scopes (micro-dollars; the gateway prices the worst case):
    its daily spend across all its conversations and runs, and this run's cost cap (the
    agent's, or `run_cost_cap` for a long run that set its own)."""
    now = time.time() if now is None else now
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    resets_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((int(now) // 86400 + 1) * 86400))
    scopes = []
    if agent.daily_spend_limit_micros is not None:
        scopes.append(
            Scope(
                name="agent_day_spend",
                key=f"{schema}:budget:agent_day_spend:{agent.pk}:{day}",
                limit=agent.daily_spend_limit_micros,
                amount=0,  # priced by the gateway
                unit="micro-dollars",
                resets_at=resets_at,
            )
        )
    cap = run_cost_cap if run_cost_cap is not None else agent.max_run_cost_micros
    if cap is not None:
        scopes.append(
            Scope(
                name="agent_run_cost",
                key=f"{schema}:budget:agent_run_cost:{run_key}",
                limit=cap,
                amount=0,
                unit="micro-dollars",
                ttl=7 * 86400,
            )
        )
    return tuple(scopes)


def wire_name(name: str) -> str:
    return name.replace(".", "__")


@in_workspace_schema
def _call_tool(workspace: Workspace, ctx: ToolContext, call: ToolCall, step: int) -> ToolOutcome:
    return tool_call(ctx, call.name, call.arguments, step=step)


async def agent_loop(
    *,
    scope: LlmScope,
    request: ChatRequest,
    ctx: ToolContext,
    tools: Sequence[ToolSpec[Any, Any]],
    max_steps: int,
    resume: Resume | None = None,
    park: bool = True,
    checkpoints: bool = False,
) -> AsyncIterator[LoopEvent]:
    """Run the loop from `request` (system prompt and history), or from where it parked
    (`resume`: the stored messages, and the held calls, called again first); see the module
    docstring. `park=False` (an API client, which can't be resumed): held calls don't end the
    loop; the model reads that they wait, and says so. `checkpoints=True` yields a `Checkpoint`
    after the model call and after each tool call (long runs store them)."""
    messages = list(request.messages if resume is None else resume.messages)
    # Providers accept [a-zA-Z0-9_-] in tool names: remote MCP tools ("server.tool") are
    # offered as "server__tool" and mapped back before they run.
    real = {wire_name(spec.name): spec.name for spec in tools}
    offered = tuple(replace(spec.as_llm_tool(), name=wire_name(spec.name)) for spec in tools)
    first = 1
    if resume is not None:
        first = resume.step + 1
        held: list[ToolCall] = []
        for index, call in enumerate(resume.held):
            yield ToolStarted(resume.step, call)
            outcome = await _call_tool(ctx.workspace, ctx, call, resume.step)
            yield ToolFinished(resume.step, call, outcome)
            _replace_result(messages, call, outcome, wire_name(call.name))
            if outcome.status == ToolAudit.Status.AWAITING_APPROVAL:
                held.append(call)
            if checkpoints:
                yield Checkpoint(resume.step, tuple(messages), tuple(resume.held[index + 1 :]))
        if held and park:
            yield Parked(resume.step, tuple(messages), tuple(held))
            return
    for step in range(first, max(1, max_steps) + 1):
        step_request = replace(
            request,
            messages=tuple(messages),
            tools=offered,
            tool_choice="auto" if offered else None,
        )
        calls: list[ToolCall] = []
        text: list[str] = []
        trace_id: str | None = None
        events = llm_stream(scope=scope, request=step_request)
        try:
            async for event in events:
                if isinstance(event, ToolUseEvent):
                    calls.append(event.call)
                    continue
                if isinstance(event, TokenEvent):
                    text.append(event.text)
                elif isinstance(event, DoneEvent) and event.response is not None:
                    trace_id = event.response.trace_id  # the call that asked for the tools
                yield event
        finally:  # closed early (stop, lost socket): close the model stream, which settles
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        if not calls:
            return
        messages.append(Message("assistant", "".join(text), tool_calls=tuple(calls)))
        # Audit rows link to the step's trace; held calls carry the model's words as rationale.
        step_ctx = replace(ctx, trace_id=trace_id, rationale="".join(text))
        waiting: list[ToolCall] = []
        todo = [replace(c, name=real.get(c.name, c.name)) for c in calls]
        if checkpoints:
            yield Checkpoint(step, tuple(messages), tuple(todo))
        for index, wire_call in enumerate(calls):
            call = todo[index]
            yield ToolStarted(step, call)
            outcome = await _call_tool(ctx.workspace, step_ctx, call, step)
            yield ToolFinished(step, call, outcome)
            messages.append(
                Message("tool", outcome.content, tool_call_id=call.id, name=wire_call.name)
            )
            if outcome.status == ToolAudit.Status.AWAITING_APPROVAL:
                waiting.append(call)
            if checkpoints:
                yield Checkpoint(step, tuple(messages), tuple(todo[index + 1 :]))
        if waiting and park:  # no model call while a person decides: park, holding nothing
            yield Parked(step, tuple(messages), tuple(waiting))
            return
    yield StepCapReached(max_steps)


def _replace_result(
    messages: list[Message], call: ToolCall, outcome: ToolOutcome, name: str
) -> None:
    """The call's result in the conversation: replacing the one it had (a held call called
    again), else after the others (a call a crash interrupted before its result)."""
    for index, message in enumerate(messages):
        if message.role == "tool" and message.tool_call_id == call.id:
            messages[index] = replace(message, content=outcome.content)
            return
    messages.append(Message("tool", outcome.content, tool_call_id=call.id, name=name))
