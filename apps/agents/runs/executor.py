"""Running one long run on a worker, under a fenced lease (docs/architecture.md, "Long runs").

`run_execute` takes the lease (a new fencing token each time), then runs the agent loop from
the stored state: a fresh run from its task, a resumed one from its last checkpoint, whose
pending tool calls are called again first (each with its idempotency key, so a call that ran
before a crash replays its stored result instead of acting twice). Every write is conditional
on the token: a worker that lost its lease stops without writing. A watcher renews the lease
every third of its length and checks for a cancel every half second, closing the model stream
in flight. A held call parks the run (its worker is released; the decision re-queues it);
the caps end it as failed_step_limit / failed_budget_exceeded, keeping the partial work.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.agents.loop import (
    Checkpoint,
    Parked,
    Resume,
    StepCapReached,
    ToolFinished,
    agent_loop,
    agent_scopes,
    calls_dump,
    calls_load,
    messages_dump,
    messages_load,
)
from apps.agents.models import AgentRun
from apps.agents.prompting import agent_system_prompt
from apps.agents.tools.registry import ToolContext, ToolSpec, tools_for
from apps.common.channels import in_workspace_schema
from apps.common.streams import until_stopped
from apps.llm.services import (
    Actor,
    BudgetExceededError,
    CallScope,
    ChatRequest,
    DoneEvent,
    ErrorEvent,
    GatewayError,
    Message,
    TokenEvent,
    Usage,
    call_scope_for,
)
from apps.workspaces.models import User, Workspace
from apps.workspaces.selectors import membership_get

from .services import run_event, run_notify_ended, run_push

log = structlog.get_logger(__name__)

Status = AgentRun.Status
CANCEL_POLL_SECONDS = 0.5


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Lease:
    run_id: int
    token: int
    lost: bool = False
    cancelled: bool = False


@dataclass(frozen=True)
class _Setup:
    run: AgentRun
    ctx: ToolContext
    tools: list[ToolSpec[Any, Any]]
    scope: CallScope
    request: ChatRequest
    resume: Resume | None


@in_workspace_schema
def _acquire(workspace: Workspace, run_id: int, owner: str) -> _Lease | None:
    """The lease, if the run is queued or running and nobody holds a live one."""
    now = timezone.now()
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status not in (Status.QUEUED, Status.RUNNING):
            return None
        held = run.lease_owner and run.lease_expires_at and run.lease_expires_at > now
        if held:
            return None
        run.lease_token += 1
        run.lease_owner = owner
        run.lease_expires_at = now + timedelta(seconds=settings.AGENT_RUN_LEASE_SECONDS)
        run.attempts += 1
        run.started_at = run.started_at or now
        resumed = run.status == Status.RUNNING or run.step > 0
        run.status = Status.RUNNING
        run.save()
        summary = f"Resumed at step {run.step + 1} by {owner}" if resumed else f"Started by {owner}"
        run_event(run, kind="status", status="running", summary=summary)
        return _Lease(run.pk, run.lease_token)


@in_workspace_schema
def _renew(workspace: Workspace, lease: _Lease) -> None:
    """Extend the lease (fenced) and read the cancel flag."""
    until = timezone.now() + timedelta(seconds=settings.AGENT_RUN_LEASE_SECONDS)
    kept = AgentRun.objects.filter(
        pk=lease.run_id, lease_token=lease.token, status=Status.RUNNING
    ).update(lease_expires_at=until)
    lease.lost = lease.lost or not kept
    lease.cancelled = AgentRun.objects.filter(
        pk=lease.run_id, cancel_requested_at__isnull=False
    ).exists()


@in_workspace_schema
def _cancel_asked(workspace: Workspace, lease: _Lease) -> None:
    lease.cancelled = AgentRun.objects.filter(
        pk=lease.run_id, cancel_requested_at__isnull=False
    ).exists()


@in_workspace_schema
def _write(
    workspace: Workspace, lease: _Lease, event: dict[str, Any] | None, **fields: Any
) -> bool:
    """Update the run (and add a timeline event) only while holding the lease."""
    with transaction.atomic():
        mine = AgentRun.objects.filter(pk=lease.run_id, lease_token=lease.token)
        kept = mine.update(**fields) if fields else mine.select_for_update().exists()
        if not kept:
            lease.lost = True
            return False
        if event is not None:
            run_event(AgentRun.objects.select_related("agent").get(pk=lease.run_id), **event)
    return True


@in_workspace_schema
def _setup(workspace: Workspace, run_id: int) -> _Setup:
    run = AgentRun.objects.select_related("agent").get(pk=run_id)
    agent = run.agent
    user = User.objects.get(pk=run.started_by_id)
    membership = membership_get(workspace=workspace, user=user)
    if membership is None:
        raise RunRefused(f"{user.email} is no longer a member of this workspace.")
    run_key = f"run-{run.public_id}"
    ctx = ToolContext(
        workspace=workspace,
        agent=agent,
        user=user,
        membership=membership,
        run_key=run_key,
        via="run",
        resume=("run", str(run.pk)),
    )
    scopes = agent_scopes(
        agent, schema=workspace.schema_name, run_key=run_key, run_cost_cap=run.max_cost_micros
    )
    scope = call_scope_for(
        workspace=workspace,
        actor=Actor("agent", str(agent.pk)),
        feature="agent.run",
        user=user,
        request_id=run_key,
        extra_scopes=scopes,
    )
    prompt, system = agent_system_prompt(workspace=workspace, agent=agent)
    request = ChatRequest(
        alias=agent.alias,
        messages=(Message("system", system), Message("user", run.task)),
        metadata={"run": str(run.public_id)},
        prompt_name=prompt.name,
        prompt_version=prompt.version,
    )
    resume = None
    if run.state.get("messages"):
        resume = Resume(
            step=int(run.state["step"]),
            messages=messages_load(run.state["messages"]),
            held=tuple(calls_load(c) for c in run.state.get("pending", [])),
        )
    tools = tools_for(list(agent.tools or []), workspace=workspace)
    return _Setup(run, ctx, tools, scope, request, resume)


class RunRefused(Exception):
    """The run can't go on (its person left the workspace, its agent was paused)."""


async def run_execute(*, workspace: Workspace, run_id: int, owner: str | None = None) -> str:
    """Run (or resume) the run `run_id` if its lease is free; how it ended (or "skipped")."""
    lease = await _acquire(workspace, run_id, owner or worker_name())
    if lease is None:
        return "skipped"
    try:
        setup = await _setup(workspace, run_id)
    except RunRefused as exc:
        await _end(workspace, lease, Status.FAILED, error=str(exc))
        return Status.FAILED
    stop = asyncio.Event()
    watcher = asyncio.ensure_future(_watch(workspace, lease, stop))
    try:
        return await _drive(workspace, lease, setup, stop)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def _watch(workspace: Workspace, lease: _Lease, stop: asyncio.Event) -> None:
    """Renew the lease every third of it; check for a cancel every half second."""
    every = max(settings.AGENT_RUN_LEASE_SECONDS / 3, CANCEL_POLL_SECONDS)
    since = 0.0
    while not stop.is_set():
        await asyncio.sleep(CANCEL_POLL_SECONDS)
        since += CANCEL_POLL_SECONDS
        if since >= every:
            since = 0.0
            await _renew(workspace, lease)
        else:
            await _cancel_asked(workspace, lease)
        if lease.lost or lease.cancelled:
            stop.set()


async def _drive(workspace: Workspace, lease: _Lease, setup: _Setup, stop: asyncio.Event) -> str:
    run = setup.run
    text: list[str] = []
    cost, usage = run.cost_micros, Usage(run.input_tokens, run.output_tokens)
    step = run.step
    loop = agent_loop(
        scope=setup.scope,
        request=setup.request,
        ctx=setup.ctx,
        tools=setup.tools,
        max_steps=run.max_steps,
        resume=setup.resume,
        checkpoints=True,
    )
    try:
        async for event in until_stopped(stop, loop):
            if event is None:  # cancelled, or the lease was lost
                break
            if isinstance(event, TokenEvent):
                text.append(event.text)
            elif isinstance(event, DoneEvent):
                call_cost = event.response.cost_micros if event.response is not None else 0
                cost, usage = cost + call_cost, usage + event.usage
                model = event.response.model if event.response is not None else ""
                ok = await _write(
                    workspace,
                    lease,
                    {
                        "kind": "model",
                        "name": model,
                        "status": event.reason,
                        "cost_micros": call_cost,
                        "step": step + 1,
                    },
                    cost_micros=cost,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                )
                if not ok:
                    return "lost"
            elif isinstance(event, ErrorEvent):
                await _end(workspace, lease, Status.FAILED, error=event.message, cost=cost)
                return Status.FAILED
            elif isinstance(event, ToolFinished):
                ok = await _write(
                    workspace,
                    lease,
                    {
                        "kind": "tool",
                        "name": event.call.name,
                        "status": event.outcome.status,
                        "summary": event.outcome.summary,
                        "step": event.step,
                        "data": {
                            "call_id": event.call.id,
                            "approval_id": event.outcome.approval_id,
                        },
                    },
                )
                if not ok:
                    return "lost"
            elif isinstance(event, Checkpoint):
                text.clear()  # the model's words before tool calls are not the result
                step = event.step
                state = {
                    "step": event.step,
                    "messages": messages_dump(event.messages),
                    "pending": [calls_dump(c) for c in event.pending],
                }
                if not await _write(workspace, lease, None, state=state, step=event.step):
                    return "lost"
            elif isinstance(event, Parked):
                state = {
                    "step": event.step,
                    "messages": messages_dump(event.messages),
                    "pending": [calls_dump(c) for c in event.held],
                }
                await _write(
                    workspace,
                    lease,
                    {
                        "kind": "approval",
                        "status": "waiting",
                        "summary": f"{len(event.held)} call(s) wait for approval",
                        "step": event.step,
                    },
                    state=state,
                    step=event.step,
                    status=Status.WAITING,
                    lease_owner="",
                    lease_expires_at=None,
                )
                return Status.WAITING
            elif isinstance(event, StepCapReached):
                error = (
                    f"It stopped after {event.steps} steps without a final answer (its step cap)."
                )
                await _end(workspace, lease, Status.FAILED_STEPS, error=error, cost=cost)
                return Status.FAILED_STEPS
    except BudgetExceededError as exc:
        status = Status.FAILED_BUDGET if exc.denial.scope == "agent_run_cost" else Status.FAILED
        await _end(workspace, lease, status, error=exc.message, cost=cost)
        return status
    except GatewayError as exc:
        await _end(workspace, lease, Status.FAILED, error=exc.message, cost=cost)
        return Status.FAILED
    if lease.lost:
        log.warning("runs.lease_lost", run=lease.run_id)
        return "lost"
    if lease.cancelled:
        await _end(workspace, lease, Status.CANCELLED, error="Cancelled.", cost=cost)
        return Status.CANCELLED
    await _end(workspace, lease, Status.SUCCEEDED, result="".join(text), cost=cost)
    return Status.SUCCEEDED


@in_workspace_schema
def _end(
    workspace: Workspace,
    lease: _Lease,
    status: str,
    *,
    error: str = "",
    result: str = "",
    cost: int | None = None,
) -> None:
    """Store how the run ended (fenced), record its outcome once, tell its starter."""
    fields: dict[str, Any] = {
        "status": status,
        "error": error[:2000],
        "result": result,
        "finished_at": timezone.now(),
        "lease_owner": "",
        "lease_expires_at": None,
    }
    if cost is not None:
        fields["cost_micros"] = cost
    with transaction.atomic():
        if not AgentRun.objects.filter(pk=lease.run_id, lease_token=lease.token).update(**fields):
            lease.lost = True
            return
        run = AgentRun.objects.select_related("agent").get(pk=lease.run_id)
        run_event(run, kind="status", status=status, summary=(error or result)[:500])
        if status == Status.SUCCEEDED:
            _record_outcome(workspace, run)
        run_notify_ended(run)
    run_push(run)


def _record_outcome(workspace: Workspace, run: AgentRun) -> None:
    if not run.outcome_kind or run.outcome_recorded or not run.outcome_price_micros:
        return
    from apps.billing.outcomes import outcome_record

    outcome_record(
        workspace=workspace,
        kind=run.outcome_kind,
        price_micros=run.outcome_price_micros,
        external_id=f"run-{run.public_id}",
        run_id=str(run.public_id),
    )
    AgentRun.objects.filter(pk=run.pk).update(outcome_recorded=True)
