"""Plans as data and the monthly grant: once per workspace and calendar month (UTC), skipped
for subscribed workspaces, and the plan's limits reach the gateway."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine

from apps.billing.ledger import balance_get
from apps.billing.models import LedgerEntry, Plan, Subscription
from apps.billing.plans import all_workspaces_grant_monthly, plan_get
from apps.llm.config import limits_for
from apps.workspaces.ai import ai_settings_get
from apps.workspaces.models import Workspace
from tests.billing.conftest import MakeWorkspace, like_new

MARCH = datetime(2031, 3, 15, 12, tzinfo=UTC)
APRIL_FIRST = datetime(2031, 4, 1, 0, 0, 1, tzinfo=UTC)


def _grants(workspace_id: int) -> list[str]:
    return list(
        LedgerEntry.objects.filter(workspace_id=workspace_id, reason="plan_grant")
        .order_by("id")
        .values_list("idempotency_key", flat=True)
    )


def test_monthly_grants_are_idempotent_per_workspace_and_month(
    make_workspace: MakeWorkspace,
) -> None:
    with time_machine.travel(MARCH, tick=False):
        workspace = make_workspace(plan="pro")  # March's grant comes with the workspace
        again = all_workspaces_grant_monthly()
        twice = all_workspaces_grant_monthly()
    with time_machine.travel(APRIL_FIRST, tick=False):
        april = all_workspaces_grant_monthly()
        april_again = all_workspaces_grant_monthly()

    assert _grants(workspace.pk) == [
        f"plan_grant:{workspace.pk}:2031-03",
        f"plan_grant:{workspace.pk}:2031-04",
    ]
    # Grants add up: unused credit rolls over.
    assert balance_get(workspace_id=workspace.pk).balance_micros == 2 * 20_000_000
    assert twice.granted == 0
    assert again.granted == 2  # acme and globex: created in another month by the session
    assert april.granted >= 1
    assert april_again.granted == 0
    assert april_again.already == april.granted + april.already


def test_subscribed_workspaces_are_left_to_their_invoices(workspace: Workspace) -> None:
    with time_machine.travel(MARCH, tick=False):
        like_new(workspace, plan="pro")
        all_workspaces_grant_monthly()
    Subscription.objects.create(
        workspace=workspace, stripe_subscription_id="sub_x", plan_code="pro", status="active"
    )
    with time_machine.travel(APRIL_FIRST, tick=False):
        report = all_workspaces_grant_monthly()

    granted = _grants(workspace.pk)
    assert f"plan_grant:{workspace.pk}:2031-03" in granted
    assert f"plan_grant:{workspace.pk}:2031-04" not in granted
    assert report.subscribed >= 1
    assert "skipped (subscription)" in str(report)


def test_plan_limits_come_from_plan_rows(workspace: Workspace) -> None:
    like_new(workspace, plan="enterprise")
    Plan.objects.filter(code="enterprise").update(day_tokens=123_456, user_day_requests=42)

    limits = limits_for(workspace, ai_settings_get(workspace=workspace))

    assert (limits.workspace_day_tokens, limits.user_day_requests) == (123_456, 42)


def test_an_unknown_plan_gets_the_free_plans_terms(workspace: Workspace) -> None:
    workspace.plan = "legacy-gold"

    limits = limits_for(workspace, ai_settings_get(workspace=workspace))

    free = plan_get(code="free")
    assert (limits.workspace_day_tokens, limits.user_day_requests) == (
        free.day_tokens,
        free.user_day_requests,
    )
