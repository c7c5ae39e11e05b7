"""Approved actions no agent waits for run at once, as their person, through the same
`tool_call` path (their own rights, the claim that makes each call run once): an L1
suggestion (the agent drafted it; its person, or an admin, runs it), and a call held for an
API or MCP client (which can't be resumed)."""

from __future__ import annotations

from apps.agents.models import Agent
from apps.approvals.models import PendingAction
from apps.approvals.services import action_failed
from apps.workspaces.models import User, Workspace
from apps.workspaces.selectors import membership_get, workspace_current

from .registry import ToolContext
from .runner import tool_call


def action_run(ref: str) -> None:
    """The approvals `self` hook (after the deciding commit)."""
    action_execute(workspace=workspace_current(), action_id=int(ref))


def action_execute(*, workspace: Workspace, action_id: int) -> str:
    action = PendingAction.objects.get(pk=action_id)
    agent = Agent.objects.filter(pk=action.agent_id).first()
    user = User.objects.filter(pk=action.on_behalf_of_id).first()
    membership = membership_get(workspace=workspace, user=user) if user else None
    if agent is None or user is None or membership is None:
        action_failed(action_id=action.pk, summary="The agent or the person is gone.")
        return "failed"
    ctx = ToolContext(
        workspace=workspace,
        agent=agent,
        user=user,
        membership=membership,
        run_key=action.run_key,
        via="suggestion" if action.kind == PendingAction.Kind.SUGGESTION else action.via,
        conversation_id=action.conversation_id,
    )
    status = "executed"
    for call in action.calls:
        outcome = tool_call(ctx, call["tool"], call["args"], step=action.step)
        if not outcome.ok:
            action_failed(action_id=action.pk, summary=outcome.summary)
            status = "failed"
    return status
