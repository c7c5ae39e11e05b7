"""The workspace's autonomy policy, plugged into the tool runner's approval seam at ready()
(docs/architecture.md, "Approvals"). The levels and pending actions live in `apps.approvals`;
this module maps a tool call onto them:

- a call an approved action covers runs, claimed once (however often it is resumed);
- a call a person rejected (or nobody approved in time) is refused, the model told why;
- otherwise by level: L5 runs; L2 runs (Undo offered when the tool has an inverse); L1 is
  suggested to the person as a ready-to-run action; L3 waits for its own approval; L4 joins
  the step's plan, which one approval covers exactly.
"""

from __future__ import annotations

from typing import Any

from apps.approvals.models import Level, PendingAction
from apps.approvals.policy import level_for
from apps.approvals.services import action_claim, action_covering, action_hold, refusal_text

from .models import ToolAudit
from .tools.policy import RUN, Decision
from .tools.registry import ToolContext, ToolSpec

Status = PendingAction.Status

KINDS = {
    Level.SUGGEST: PendingAction.Kind.SUGGESTION,
    Level.CONFIRM: PendingAction.Kind.CONFIRM,
    Level.PLAN: PendingAction.Kind.PLAN,
}


def _uses(ctx: ToolContext, spec: ToolSpec[Any, Any]) -> int:
    """How often this agent ran the tool (external tools: L3 for the first uses, then L4)."""
    if not spec.external:
        return 0
    return ToolAudit.objects.filter(
        agent_id=ctx.agent.pk, tool=spec.name, status=ToolAudit.Status.OK, undo_of=None
    ).count()


def autonomy_decide(ctx: ToolContext, spec: ToolSpec[Any, Any], args: dict[str, Any]) -> Decision:
    step = ctx.step
    covering = action_covering(run_key=ctx.run_key, step=step, tool=spec.name, args=args)
    if covering is not None and covering.status in (Status.APPROVED, Status.EXECUTED):
        pk = covering.pk
        return Decision(
            run=True,
            approval_id=pk,
            level=covering.level,
            claim=lambda: action_claim(action_id=pk, tool=spec.name, args=args),
        )
    if covering is not None and covering.status in (Status.REJECTED, Status.EXPIRED):
        return Decision(
            run=False,
            refused=True,
            approval_id=covering.pk,
            level=covering.level,
            message=refusal_text(covering),
        )
    resolved = level_for(
        agent_id=ctx.agent.pk, tool=spec.name, flags=spec.flags, uses=_uses(ctx, spec)
    )
    if resolved.level in (Level.AUTONOMOUS, Level.UNDO):
        return RUN if resolved.level == Level.AUTONOMOUS else Decision(run=True, level=Level.UNDO)
    resume_kind, resume_ref = ctx.resume
    action = covering or action_hold(
        workspace=ctx.workspace,
        kind=KINDS[Level(resolved.level)],
        level=resolved.level,
        approvers=resolved.approvers,
        agent_id=ctx.agent.pk,
        agent_name=ctx.agent.name,
        user=ctx.user,
        tool=spec.name,
        label=spec.label or spec.name,
        args=args,
        rationale=ctx.rationale,
        amount_micros=_amount(spec, args),
        run_key=ctx.run_key,
        step=step,
        via=ctx.via,
        resume_kind=resume_kind,
        resume_ref=resume_ref,
        conversation_id=ctx.conversation_id,
        trace_id=ctx.trace_id,
    )
    if action.kind == PendingAction.Kind.SUGGESTION:
        return Decision(
            run=False,
            suggested=True,
            approval_id=action.pk,
            level=Level.SUGGEST,
            message=(
                f"Suggested to {ctx.user.email} as a ready-to-run action (autonomy L1): it did "
                "not run. Tell them what it would do; they can run it themselves."
            ),
        )
    who = "an owner or admin" if action.approvers == "admins" else "the person or an admin"
    what = "this plan" if action.kind == PendingAction.Kind.PLAN else "this call"
    return Decision(
        run=False,
        approval_id=action.pk,
        level=action.level,
        message=(
            f"{what.capitalize()} waits for approval by {who} (autonomy L{action.level}); "
            "it has not run. Say so and stop: you will be resumed with the decision."
        ),
    )


def _amount(spec: ToolSpec[Any, Any], args: dict[str, Any]) -> int | None:
    if spec.amount is None:
        return None
    try:
        return int(spec.amount(spec.input.model_validate(args)))
    except Exception:
        return None
