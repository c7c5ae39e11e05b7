"""Reads for a workspace's billing page. `access_*` gates answer 404 for missing and forbidden
alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.http import Http404
from django.utils import timezone

from apps.common.errors import ApplicationError
from apps.workspaces.models import Workspace

from .checkout import ACTIVE_SUBSCRIPTION_STATUSES
from .ledger import credits
from .models import BillingCustomer, LedgerEntry, LedgerReason, Outcome, Plan, Subscription

USAGE_DAYS = 30
# Stripe's subscription statuses as the billing page words them.
SUBSCRIPTION_STATUS_WORDS = {
    "active": "active",
    "trialing": "on trial",
    "past_due": "payment overdue",
    "unpaid": "unpaid",
    "canceled": "cancelled",
    "incomplete": "waiting for the first payment",
    "incomplete_expired": "expired before the first payment",
    "paused": "paused",
}


def access_outcome(*, workspace: Workspace, outcome_id: int) -> Outcome:
    """An outcome of `workspace` by id, or 404."""
    found = Outcome.objects.filter(workspace=workspace, pk=outcome_id).first()
    if found is None:
        raise Http404("No such outcome.")
    return found


def outcome_list(*, workspace: Workspace) -> QuerySet[Outcome]:
    """The workspace's outcomes, newest first."""
    return Outcome.objects.filter(workspace=workspace).order_by("-created_at", "-pk")


def outcome_page(
    *,
    workspace: Workspace,
    limit: int,
    status: str | None = None,
    external_id: str | None = None,
    after_id: int | None = None,
) -> tuple[list[Outcome], bool]:
    """Up to `limit` of the workspace's outcomes, newest first (as `outcome_list`), starting
    after the workspace's outcome `after_id`; and whether more follow."""
    outcomes = outcome_list(workspace=workspace)
    if after_id is not None:
        after = outcomes.filter(pk=after_id).first()
        if after is None:
            raise ApplicationError(
                f"There is no outcome {after_id} in this workspace to list after.", field="after"
            )
        outcomes = outcomes.filter(
            Q(created_at__lt=after.created_at) | Q(created_at=after.created_at, pk__lt=after.pk)
        )
    if status is not None:
        outcomes = outcomes.filter(status=status)
    if external_id is not None:
        outcomes = outcomes.filter(external_id=external_id)
    rows = list(outcomes[: limit + 1])
    return rows[:limit], len(rows) > limit


def ledger_history(*, workspace: Workspace) -> QuerySet[LedgerEntry]:
    """The workspace's ledger, newest first (ids are taken in commit order per workspace)."""
    return LedgerEntry.objects.filter(workspace=workspace).order_by("-id")


@dataclass(frozen=True, slots=True)
class PlanChoice:
    current: Plan | None
    subscription: Subscription | None
    upgrades: list[Plan]  # self-serve plans above the current one
    contact_sales: list[Plan]  # plans above it sold by hand (enterprise)
    subscription_plan: Plan | None  # the plan the subscription pays for
    has_billing_account: bool  # a Stripe customer: the billing portal can open

    @property
    def subscription_active(self) -> bool:
        sub = self.subscription
        return sub is not None and sub.status in ACTIVE_SUBSCRIPTION_STATUSES

    @property
    def subscription_status(self) -> str:
        status = self.subscription.status if self.subscription else ""
        return SUBSCRIPTION_STATUS_WORDS.get(status, status)

    @property
    def cancels_on(self) -> datetime | None:
        """When an active subscription cancelled in the portal ends (None: it renews)."""
        sub = self.subscription
        if sub is None or not self.subscription_active:
            return None
        if sub.cancel_at is not None:
            return sub.cancel_at
        return sub.current_period_end if sub.cancel_at_period_end else None

    @property
    def renews_on(self) -> datetime | None:
        sub = self.subscription
        if sub is None or not self.subscription_active or self.cancels_on is not None:
            return None
        return sub.current_period_end


def plan_choice(*, workspace: Workspace) -> PlanChoice:
    """The workspace's plan, its subscription, and the plans it can move up to."""
    plans = list(Plan.objects.all())
    current = next((plan for plan in plans if plan.code == workspace.plan), None)
    floor = current.sort_order if current else -1
    above = [plan for plan in plans if plan.sort_order > floor]
    subscription = Subscription.objects.filter(workspace=workspace).first()
    return PlanChoice(
        current=current,
        subscription=subscription,
        upgrades=[plan for plan in above if plan.self_serve and plan.price_cents > 0],
        contact_sales=[plan for plan in above if not plan.self_serve],
        subscription_plan=next(
            (plan for plan in plans if subscription and plan.code == subscription.plan_code),
            None,
        ),
        has_billing_account=BillingCustomer.objects.filter(workspace=workspace).exists(),
    )


@dataclass(frozen=True, slots=True)
class UsageChart:
    """Credits spent per day and feature (the feature.* debits), oldest day first."""

    days: list[date]
    features: list[str]
    credits: dict[str, list[Decimal]]  # feature → credits per day, aligned with `days`
    totals: dict[str, Decimal]  # feature → credits over the whole period, largest first

    @property
    def is_empty(self) -> bool:
        return not self.features

    def chartjs(self) -> dict[str, Any]:
        """The data in Chart.js's shape (numbers as floats: display only)."""
        return {
            "labels": [day.isoformat() for day in self.days],
            "datasets": [
                {"label": feature, "data": [float(value) for value in self.credits[feature]]}
                for feature in self.features
            ],
        }


def usage_by_feature(
    *, workspace: Workspace, days: int = USAGE_DAYS, now: datetime | None = None
) -> UsageChart:
    """The last `days` days (UTC, today included) of feature debits, summed in the database."""
    today = (now or timezone.now()).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    rows = (
        LedgerEntry.objects.filter(
            workspace=workspace,
            reason__startswith=LedgerReason.FEATURE_PREFIX,
            delta_micros__lt=0,
            created_at__gte=datetime.combine(first, datetime.min.time(), tzinfo=UTC),
        )
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "reason")
        .annotate(spent=Sum("delta_micros"))
        .order_by()
    )
    span = [first + timedelta(days=offset) for offset in range(days)]
    index = {day: position for position, day in enumerate(span)}
    per_feature: dict[str, list[Decimal]] = {}
    for row in rows:
        feature = row["reason"].removeprefix(LedgerReason.FEATURE_PREFIX)
        series = per_feature.setdefault(feature, [Decimal(0)] * days)
        if row["day"] in index:
            series[index[row["day"]]] += credits(-row["spent"])
    totals = {feature: sum(series, Decimal(0)) for feature, series in per_feature.items()}
    features = sorted(totals, key=lambda feature: (-totals[feature], feature))
    return UsageChart(
        days=span,
        features=features,
        credits={feature: per_feature[feature] for feature in features},
        totals={feature: totals[feature] for feature in features},
    )
