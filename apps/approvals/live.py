"""Approvals, live: a new or decided action is pushed to the person the agent acts for and to
the approvers, on their workspace sockets (`user_group`), after the commit. Best effort: the
inbox and the chat catch up on their next load. Approvers with no open socket get an email."""

from __future__ import annotations

from typing import Any

import structlog
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string

from apps.workspaces.live import users_event
from apps.workspaces.models import MANAGER_ROLES, Membership, User, Workspace
from apps.workspaces.presence import online

from .models import PendingAction

log = structlog.get_logger(__name__)


def approver_ids(workspace: Workspace, action: PendingAction) -> list[int]:
    """Who may decide `action`: owners and admins, and for `requester` actions (and L1
    suggestions) the person the agent acts for."""
    ids = list(
        Membership.objects.filter(workspace=workspace, role__in=MANAGER_ROLES).values_list(
            "user_id", flat=True
        )
    )
    if action.approvers == "requester" or action.kind == PendingAction.Kind.SUGGESTION:
        ids.append(action.on_behalf_of_id)
    return sorted(set(ids))


def action_payload(action: PendingAction) -> dict[str, Any]:
    return {
        "type": "approval",
        "id": str(action.public_id),
        "status": action.status,
        "tool": action.tools_label,
        "agent": action.agent_name,
        "on_behalf_of": action.on_behalf_of_email,
        "decided_by": action.decided_by_email,
        "conversation": action.conversation_id,
    }


def announce(workspace: Workspace, action: PendingAction) -> None:
    """A new action: pushed live to everyone concerned; emailed to approvers not online."""
    approvers = approver_ids(workspace, action)
    users_event([*approvers, action.on_behalf_of_id], action_payload(action))
    offline = [uid for uid in approvers if uid != action.on_behalf_of_id and not online(uid)]
    if not offline:
        return
    emails = list(User.objects.filter(pk__in=offline).values_list("email", flat=True))
    link = f"{workspace.url}approvals/{action.public_id}/"
    body = render_to_string("approvals/email/pending.txt", {"action": action, "link": link})

    def mail() -> None:
        try:
            send_mail(
                subject=f"Approval needed: {action.agent_name} wants to {action.tools_label}",
                message=body,
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=emails,
            )
        except Exception as exc:  # the inbox still lists it
            log.warning("approvals.email_failed", error=str(exc))

    transaction.on_commit(mail)
