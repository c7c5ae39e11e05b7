"""Pending actions: held, decided once, claimed once per call, expired, resumed.

Exactly once, however often "approve" is clicked or delivered: a decision locks the action
(and its siblings — the other actions the same answer or run waits for) and only a pending
action can be decided; a call runs only after `action_claim` added its hash to `executed`
under the row's lock, inside the tool's own transaction (so a failed tool leaves it unclaimed).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

import structlog
from django.db import transaction
from django.utils import timezone

from apps.common.errors import ApplicationError, NotFoundError, PermissionDeniedError
from apps.workspaces.live import users_event
from apps.workspaces.models import Membership, User, Workspace

from . import live
from .models import Approvers, PendingAction
from .policy import autonomy_settings
from .ports import resume

log = structlog.get_logger(__name__)

Status = PendingAction.Status
Kind = PendingAction.Kind


def call_hash(tool: str, args: dict[str, Any]) -> str:
    """The identity of a call: the tool and its canonical arguments."""
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{tool}\x1f{canonical}".encode()).hexdigest()


def _batch_hash(calls: list[dict[str, Any]]) -> str:
    joined = "\x1f".join(sorted(c["hash"] for c in calls))
    return hashlib.sha256(joined.encode()).hexdigest()


def action_hold(
    *,
    workspace: Workspace,
    kind: str,
    level: int,
    approvers: str,
    agent_id: int,
    agent_name: str,
    user: User,
    tool: str,
    label: str,
    args: dict[str, Any],
    call_id: str = "",
    rationale: str = "",
    amount_micros: int | None = None,
    run_key: str,
    step: int,
    via: str,
    resume_kind: str = "",
    resume_ref: str = "",
    conversation_id: int | None = None,
    trace_id: str | None = None,
) -> PendingAction:
    """The action this call waits on: an existing one covering it (the same call asked again
    while pending), the step's open plan (L4: the call joins it), or a new one (announced)."""
    digest = call_hash(tool, args)
    call = {
        "call_id": call_id,
        "tool": tool,
        "label": label,
        "args": args,
        "hash": digest,
        "amount_micros": amount_micros,
    }
    with transaction.atomic():
        same_step = PendingAction.objects.select_for_update().filter(
            run_key=run_key, step=step, kind=kind
        )
        for existing in same_step.order_by("pk"):
            if any(c["hash"] == digest for c in existing.calls):
                return existing
        if kind == Kind.PLAN:
            plan = same_step.filter(status=Status.PENDING).order_by("pk").first()
            if plan is not None:
                plan.calls = [*plan.calls, call]
                plan.args_hash = _batch_hash(plan.calls)
                if amount_micros:
                    plan.amount_micros = (plan.amount_micros or 0) + amount_micros
                plan.save(update_fields=["calls", "args_hash", "amount_micros"])
                users_event(live.approver_ids(workspace, plan), live.action_payload(plan))
                return plan
        ttl = autonomy_settings().action_ttl_seconds
        action = PendingAction.objects.create(
            kind=kind,
            level=level,
            agent_id=agent_id,
            agent_name=agent_name[:100],
            on_behalf_of_id=user.pk,
            on_behalf_of_email=user.email,
            approvers=Approvers.REQUESTER if kind == Kind.SUGGESTION else approvers,
            calls=[call],
            args_hash=_batch_hash([call]),
            rationale=rationale[:4000],
            amount_micros=amount_micros,
            expires_at=timezone.now() + timedelta(seconds=ttl),
            resume_kind=resume_kind if kind != Kind.SUGGESTION else "",
            resume_ref=resume_ref if kind != Kind.SUGGESTION else "",
            run_key=run_key,
            step=step,
            via=via,
            conversation_id=conversation_id,
            trace_id=trace_id,
        )
        if resume_kind == "self":  # nothing waits: the decision runs the call itself
            action.resume_ref = str(action.pk)
            action.save(update_fields=["resume_ref"])
        live.announce(workspace, action)
    log.info("approvals.held", action=str(action.public_id), kind=kind, tool=tool)
    return action


def action_covering(
    *, run_key: str, step: int, tool: str, args: dict[str, Any]
) -> PendingAction | None:
    """The newest action whose calls include exactly this call (any status)."""
    digest = call_hash(tool, args)
    for action in PendingAction.objects.filter(run_key=run_key, step=step).order_by("-pk"):
        if any(c["hash"] == digest for c in action.calls):
            return action
    return None


def action_claim(*, action_id: int, tool: str, args: dict[str, Any]) -> bool:
    """Claim the approved call for running it, in the caller's transaction: True once per call
    (its hash joins `executed`); False if it ran already or the action is not approved."""
    digest = call_hash(tool, args)
    action = PendingAction.objects.select_for_update().get(pk=action_id)
    if action.status != Status.APPROVED or digest in action.executed:
        return False
    if not any(c["hash"] == digest for c in action.calls):
        return False
    action.executed = [*action.executed, digest]
    if len(action.executed) >= len(action.calls):
        action.status = Status.EXECUTED
        action.executed_at = timezone.now()
    action.save(update_fields=["executed", "status", "executed_at"])
    return True


def action_failed(*, action_id: int, summary: str) -> None:
    """The approved call ran and failed (its transaction rolled back, the claim with it)."""
    PendingAction.objects.filter(pk=action_id, status=Status.APPROVED).update(
        status=Status.FAILED, result_summary=summary[:500]
    )


def may_decide(action: PendingAction, membership: Membership) -> bool:
    if membership.can_manage:
        return True
    mine = action.on_behalf_of_id == membership.user_id
    return mine and (action.approvers == Approvers.REQUESTER or action.kind == Kind.SUGGESTION)


def action_get(*, public_id: Any) -> PendingAction:
    """The action with this public id in the current workspace (404 for anything else,
    tampered ids included)."""
    try:
        key = uuid.UUID(str(public_id))
    except ValueError:
        raise NotFoundError("No such action.") from None
    found = PendingAction.objects.filter(public_id=key).first()
    if found is None:
        raise NotFoundError("No such action.")
    return found


def action_decide(
    *,
    workspace: Workspace,
    membership: Membership,
    public_id: Any,
    approve: bool,
    note: str = "",
) -> PendingAction:
    """Approve or reject once. A second decision, an expired action or a person who may not
    decide get a clear refusal and change nothing."""
    found = action_get(public_id=public_id)
    if not may_decide(found, membership):
        who = (
            "owners and admins"
            if found.approvers == Approvers.ADMINS
            else "its requester or an admin"
        )
        raise PermissionDeniedError(f"Only {who} can decide this action.", field="decision")
    expired = False
    with transaction.atomic():
        _lock_siblings(found)
        action = PendingAction.objects.select_for_update().get(pk=found.pk)
        if action.status != Status.PENDING:
            raise ApplicationError(_already(action), field="decision")
        now = timezone.now()
        if action.expires_at <= now:
            _expire(workspace, action, now)
            expired = True
        else:
            action.status = Status.APPROVED if approve else Status.REJECTED
            action.decided_by_id = membership.user_id
            action.decided_by_email = membership.user.email
            action.decided_at = now
            action.decision_note = note.strip()[:500]
            action.save(
                update_fields=[
                    "status",
                    "decided_by_id",
                    "decided_by_email",
                    "decided_at",
                    "decision_note",
                ]
            )
            _after_decision(workspace, action)
    if expired:
        raise ApplicationError(
            "This action expired before it was decided; the agent was told it was refused.",
            field="decision",
        )
    log.info("approvals.decided", action=str(action.public_id), status=action.status)
    return action


def _already(action: PendingAction) -> str:
    if action.status == Status.EXPIRED:
        return "This action expired before it was decided; nothing more happens."
    verbs: dict[str, str] = {
        Status.EXECUTED: "approved and executed",
        Status.FAILED: "approved (the call failed)",
    }
    said = f"This action was already {verbs.get(action.status, action.status)}"
    if action.decided_by_email:
        said += f" by {action.decided_by_email}"
    if action.decided_at:
        said += f" at {timezone.localtime(action.decided_at):%Y-%m-%d %H:%M}"
    return f"{said}; nothing more happens."


def _lock_siblings(action: PendingAction) -> None:
    """Lock every action the same answer or run waits for, in one order (no deadlock), so the
    last decision — and only it — sees none pending and resumes."""
    if action.resume_kind:
        list(
            PendingAction.objects.select_for_update()
            .filter(resume_kind=action.resume_kind, resume_ref=action.resume_ref)
            .order_by("pk")
            .values_list("pk", flat=True)
        )


def _expire(workspace: Workspace, action: PendingAction, now: Any) -> None:
    action.status = Status.EXPIRED
    action.decided_at = now
    action.save(update_fields=["status", "decided_at"])
    _after_decision(workspace, action)


def _after_decision(workspace: Workspace, action: PendingAction) -> None:
    concerned = [*live.approver_ids(workspace, action), action.on_behalf_of_id]
    users_event(concerned, live.action_payload(action))
    if action.kind == Kind.SUGGESTION or action.resume_kind == "self":
        if action.status == Status.APPROVED:  # run it now, as its person
            ref = str(action.pk)
            transaction.on_commit(lambda: resume("self", ref))
        return
    if not action.resume_kind:
        return
    waiting = PendingAction.objects.filter(
        resume_kind=action.resume_kind, resume_ref=action.resume_ref, status=Status.PENDING
    ).exists()
    if not waiting:
        kind, ref = action.resume_kind, action.resume_ref
        transaction.on_commit(lambda: resume(kind, ref))


def actions_expire(*, workspace: Workspace) -> int:
    """Expire the workspace's overdue actions (expiry counts as a rejection); a beat task."""
    count = 0
    now = timezone.now()
    overdue = PendingAction.objects.filter(status=Status.PENDING, expires_at__lte=now)
    for action_id in overdue.values_list("pk", flat=True)[:500]:
        with transaction.atomic():
            action = PendingAction.objects.get(pk=action_id)
            _lock_siblings(action)
            action = PendingAction.objects.select_for_update().get(pk=action_id)
            if action.status == Status.PENDING:
                _expire(workspace, action, now)
                count += 1
    return count


def decisions_for(*, resume_kind: str, resume_ref: str) -> list[PendingAction]:
    return list(
        PendingAction.objects.filter(resume_kind=resume_kind, resume_ref=resume_ref).order_by("pk")
    )


def refusal_text(action: PendingAction) -> str:
    """What the model is told about a call a person did not approve."""
    if action.status == Status.EXPIRED:
        return "Nobody approved this call before it expired; it did not run."
    note = f" Their note: {action.decision_note}" if action.decision_note else ""
    return f"{action.decided_by_email or 'A person'} rejected this call; it did not run.{note}"
