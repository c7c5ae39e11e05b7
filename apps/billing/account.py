"""Billing's side of the gateway's ports (apps/llm/ports.py) and of workspace creation
(apps/workspaces/ports.py), plugged in by BillingConfig.ready()."""

from __future__ import annotations

from django.conf import settings

from apps.llm.services import CreditLimit, PlanLimits
from apps.workspaces.models import Workspace

from .ledger import balance_get
from .plans import plan_get, plan_grant_month


class LedgerAccount:
    """The gateway's AccountPort: plan limits from billing.Plan, credit from the ledger."""

    def plan_limits(self, workspace: Workspace) -> PlanLimits:
        plan = plan_get(code=workspace.plan)
        return PlanLimits(day_tokens=plan.day_tokens, user_day_requests=plan.user_day_requests)

    def credit(self, workspace: Workspace) -> CreditLimit:
        balance = balance_get(workspace_id=workspace.pk)
        return CreditLimit(
            balance_micros=balance.balance_micros,
            seq=balance.last_entry_id,
            byok_fee_micros=settings.BILLING_BYOK_FEE_MICROS,
        )


def workspace_plan_grant(workspace: Workspace) -> None:
    """A new workspace's provisioner: its plan's credit for the current month."""
    plan_grant_month(workspace=workspace)
