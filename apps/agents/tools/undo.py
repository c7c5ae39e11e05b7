"""Undo (autonomy L2, "act with undo"): a call that ran at L2 can be reversed for the
workspace's undo window by the person it acted for or an admin, once, with the tool's own
inverse (`ToolSpec.undo`). The undo is one transaction and one audit row (`undo_of`, unique:
two clicks undo once)."""

from __future__ import annotations

import time
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.agents.models import Agent, ToolAudit
from apps.approvals.models import Level
from apps.approvals.policy import autonomy_settings
from apps.common.errors import ApplicationError, NotFoundError
from apps.workspaces.models import Membership, Workspace

from .registry import ToolContext, tool_get

Status = ToolAudit.Status


def undo_open(audit: ToolAudit, *, window_seconds: int, now: object = None) -> bool:
    """Whether `audit` may still be undone (ignoring who asks)."""
    if audit.status != Status.OK or audit.autonomy_level != Level.UNDO or audit.undo_of:
        return False
    spec = tool_get(audit.tool)
    if spec is None or spec.undo is None:
        return False
    deadline = audit.created_at + timedelta(seconds=window_seconds)
    return (now or timezone.now()) <= deadline  # type: ignore[operator]


def tool_undo(*, workspace: Workspace, membership: Membership, audit_id: int) -> ToolAudit:
    """Reverse the L2 call `audit_id`; returns the undo's audit row."""
    audit = ToolAudit.objects.filter(pk=audit_id).first()
    if audit is None:
        raise NotFoundError("No such tool call.")
    if audit.on_behalf_of_id != membership.user_id and not membership.can_manage:
        raise NotFoundError("No such tool call.")  # someone else's call: nothing to see
    window = autonomy_settings().undo_window_seconds
    if ToolAudit.objects.filter(undo_of=audit.pk).exists():
        raise ApplicationError("This call was already undone.", field="undo")
    if not undo_open(audit, window_seconds=window):
        raise ApplicationError(
            f"This call can't be undone: only calls made at L2 (act with undo) by a tool with "
            f"an inverse, within {window // 60} minutes.",
            field="undo",
        )
    spec = tool_get(audit.tool)
    if spec is None or spec.undo is None:  # undo_open checked it; the registry is code
        raise ApplicationError("This tool has no undo.", field="undo")
    agent = Agent.objects.filter(pk=audit.agent_id or 0).first() or Agent(
        pk=audit.agent_id, name=audit.agent_name
    )
    ctx = ToolContext(
        workspace=workspace,
        agent=agent,
        user=membership.user,
        membership=membership,
        run_key=f"undo-{audit.pk}",
        via="undo",
        conversation_id=audit.conversation_id,
        trace_id=str(audit.trace_id) if audit.trace_id else None,
    )
    started = time.monotonic()
    try:
        with transaction.atomic():
            said = spec.undo(ctx, audit.result or {})
            return ToolAudit.objects.create(
                agent_id=audit.agent_id,
                agent_name=audit.agent_name,
                on_behalf_of_id=membership.user_id,
                via="undo",
                tool=audit.tool,
                args=audit.args,
                result={"undone": audit.pk},
                result_summary=f"Undone: {said}"[:500],
                status=Status.OK,
                reason=f"undo of call {audit.pk} by {membership.user.email}",
                trace_id=audit.trace_id,
                conversation_id=audit.conversation_id,
                autonomy_level=Level.UNDO,
                undo_of=audit.pk,
                duration_ms=int((time.monotonic() - started) * 1000),
            )
    except IntegrityError:
        if ToolAudit.objects.filter(undo_of=audit.pk).exists():
            raise ApplicationError("This call was already undone.", field="undo") from None
        raise ApplicationError("The undo failed; nothing was changed.", field="undo") from None
