"""Starting, cancelling and watching long runs. Thin edges (the runs pages, `/v1/agents/…/runs`,
the tasks) call these."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_tenants.utils import tenant_context

from apps.agents.models import Agent, AgentRun, RunEvent
from apps.common.errors import ApplicationError, NotFoundError
from apps.workspaces.live import users_event
from apps.workspaces.models import Membership, User, Workspace

log = structlog.get_logger(__name__)

Status = AgentRun.Status
MAX_TASK_CHARS = 20_000
ENDED: dict[str, str] = {
    Status.SUCCEEDED: "succeeded",
    Status.FAILED: "failed",
    Status.FAILED_BUDGET: "stopped at its cost cap",
    Status.FAILED_STEPS: "stopped at its step cap",
    Status.CANCELLED: "was cancelled",
}


def run_start(
    *,
    workspace: Workspace,
    membership: Membership,
    agent: Agent,
    task: object,
    max_steps: int | None = None,
    max_cost_micros: int | None = None,
    via: str = "browser",
    api_key_id: int | None = None,
    outcome_kind: str = "",
    outcome_price_micros: int | None = None,
) -> AgentRun:
    """Queue a run of `agent` on `task` for the member; it starts on a worker after the commit.
    Caps default to the agent's; a run's caps can only be lower."""
    if not isinstance(task, str) or not task.strip():
        raise ApplicationError("Describe the task for the agent.", field="task")
    task = task.replace("\x00", "").strip()
    if len(task) > MAX_TASK_CHARS:
        raise ApplicationError(
            f"The task is {len(task):,} characters; the limit is {MAX_TASK_CHARS:,}.", field="task"
        )
    if not agent.is_active:
        raise ApplicationError(f"{agent.name} is paused by an admin.", field="agent")
    if not agent.tools:
        raise ApplicationError(
            f"{agent.name} has no tools, so it can't act in a background run; an admin can "
            "give it tools on the Agents page.",
            field="agent",
        )
    steps = agent.max_steps if max_steps is None else max_steps
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= agent.max_steps:
        raise ApplicationError(
            f"The step cap must be a whole number from 1 to {agent.max_steps} (the agent's).",
            field="max_steps",
        )
    cap = agent.max_run_cost_micros if max_cost_micros is None else max_cost_micros
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap <= 0):
        raise ApplicationError(
            "The cost cap must be a positive whole number of micro-dollars.",
            field="max_cost_micros",
        )
    if cap is not None and agent.max_run_cost_micros is not None:
        cap = min(cap, agent.max_run_cost_micros)
    if outcome_kind and (outcome_price_micros is None or outcome_price_micros <= 0):
        raise ApplicationError("An outcome needs a positive price.", field="outcome")
    with transaction.atomic():
        run = AgentRun.objects.create(
            agent=agent,
            task=task,
            started_by_id=membership.user_id,
            via=via,
            api_key_id=api_key_id,
            max_steps=steps,
            max_cost_micros=cap,
            outcome_kind=outcome_kind[:100],
            outcome_price_micros=outcome_price_micros if outcome_kind else None,
        )
        run_event(
            run, kind="status", status=Status.QUEUED, summary=f"Queued by {membership.user.email}"
        )
        run_enqueue(run)
    log.info("runs.started", run=str(run.public_id), agent=agent.slug)
    return run


def run_enqueue(run: AgentRun) -> None:
    from apps.agents.tasks import run_agent

    pk = run.pk
    transaction.on_commit(lambda: run_agent.delay(pk))


def run_resume(ref: str) -> None:
    """The approvals resume hook for runs: every action the run waited on is decided, so it
    goes back on the queue (its worker was released while it waited)."""
    with transaction.atomic():
        run = (
            AgentRun.objects.select_for_update().filter(pk=int(ref), status=Status.WAITING).first()
        )
        if run is None:  # cancelled meanwhile, or resumed already
            return
        run.status = Status.QUEUED
        run.save(update_fields=["status"])
        run_event(run, kind="approval", status="decided", summary="Decided: back on the queue.")
        run_enqueue(run)


def run_event(run: AgentRun, **fields: Any) -> RunEvent:
    """A timeline entry, pushed live to the run's starter."""
    event = RunEvent.objects.create(run=run, step=fields.pop("step", run.step), **fields)
    run_push(run)
    return event


def run_push(run: AgentRun) -> None:
    users_event(
        [run.started_by_id],
        {
            "type": "run",
            "id": str(run.public_id),
            "status": run.status,
            "step": run.step,
            "cost_micros": run.cost_micros,
        },
    )


def run_cancel(*, membership: Membership, run: AgentRun) -> AgentRun:
    """Ask the run to stop: a queued or waiting run ends at once; a running one within a step
    (its worker checks every half second and closes the model stream in flight)."""
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=run.pk)
        if not run.is_active:
            raise ApplicationError(
                f"This run already {ENDED.get(run.status, run.status)}; there is nothing to cancel.",
                field="run",
            )
        now = timezone.now()
        run.cancel_requested_at = run.cancel_requested_at or now
        fields = ["cancel_requested_at"]
        if run.status in (Status.QUEUED, Status.WAITING):
            run.status, run.finished_at = Status.CANCELLED, now
            run.lease_expires_at = None
            fields += ["status", "finished_at", "lease_expires_at"]
        run.save(update_fields=fields)
        by = membership.user.email
        run_event(run, kind="status", status="cancel", summary=f"Cancel requested by {by}")
    return run


def run_visible(*, membership: Membership) -> QuerySet[AgentRun]:
    """Owners and admins see every run; members their own."""
    runs = AgentRun.objects.select_related("agent")
    if membership.can_manage:
        return runs
    return runs.filter(started_by_id=membership.user_id)


def access_run(*, membership: Membership, public_id: Any) -> AgentRun:
    try:
        key = uuid.UUID(str(public_id))
    except ValueError:
        raise NotFoundError("No such run.") from None
    run = run_visible(membership=membership).filter(public_id=key).first()
    if run is None:
        raise NotFoundError("No such run.")
    return run


def run_notify_ended(run: AgentRun) -> None:
    """The starter learns how a run that hit a cap (or failed) ended: live, and by email."""
    users_event(
        [run.started_by_id], {"type": "run", "id": str(run.public_id), "status": run.status}
    )
    user = User.objects.filter(pk=run.started_by_id).first()
    if user is None or run.status == Status.SUCCEEDED:
        return
    said = ENDED.get(run.status, run.status)
    body = (
        f"Your run of {run.agent.name} {said} after {run.step} step(s).\n\n"
        f"Task: {run.task[:500]}\n\n{run.error}\n\nThe partial work is kept on the run's page."
    )

    def mail() -> None:
        try:
            send_mail(
                subject=f"{run.agent.name}: your run {said}",
                message=body,
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[user.email],
            )
        except Exception as exc:
            log.warning("runs.email_failed", error=str(exc))

    transaction.on_commit(mail)


def runs_janitor(*, now: Any = None) -> int:
    """Re-queue the runs whose worker died (running, lease expired), in every workspace; a
    beat task. A re-queued run gets an ownerless grace lease, so the next ticks leave it alone
    while it waits in the queue, and any worker may take it."""
    now = now or timezone.now()
    grace = now + timedelta(seconds=4 * settings.AGENT_RUN_LEASE_SECONDS)
    count = 0
    for workspace in Workspace.objects.tenants().order_by("pk").iterator():
        with tenant_context(workspace):
            stale = AgentRun.objects.filter(status=Status.RUNNING, lease_expires_at__lt=now)
            for run_id in stale.values_list("pk", flat=True):
                with transaction.atomic():
                    taken = AgentRun.objects.filter(
                        pk=run_id, status=Status.RUNNING, lease_expires_at__lt=now
                    ).update(lease_owner="", lease_expires_at=grace)
                    if not taken:
                        continue
                    run = AgentRun.objects.get(pk=run_id)
                    run_event(
                        run,
                        kind="status",
                        status="requeued",
                        summary="Its worker stopped answering; it resumes on another.",
                    )
                    run_enqueue(run)
                count += 1
    return count
