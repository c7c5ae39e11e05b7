"""Reads for a workspace's billing page. `access_*` gates answer 404 for missing and forbidden
alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet, Sum
from django.db.models.functions import TruncDate
from django.http import Http404
from django.utils import timezone

from apps.workspaces.models import Workspace

from .ledger import credits
from .models import LedgerEntry, LedgerReason, Outcome, Plan, Subscription

USAGE_DAYS = 30


def access_outcome(*, workspace: Workspace, outcome_id: int) -> Outcome:
    """An outcome of `workspace` by id, or 404."""
    found = Outcome.objects.filter(workspace=workspace, pk=outcome_id).first()
    if found is None:
        raise Http404("No such outcome.")
    return found


def outcome_list(*, workspace: Workspace) -> QuerySet[Outcome]:
    """The workspace's outcomes, newest first."""
    return Outcome.objects.filter(workspace=workspace).order_by("-created_at", "-pk")


def ledger_history(*, workspace: Workspace) -> QuerySet[LedgerEntry]:
    """The workspace's ledger, newest first (ids are taken in commit order per workspace)."""
    return LedgerEntry.objects.filter(workspace=workspace).order_by("-id")


@dataclass(frozen=True, slots=True)
class PlanChoice:
    current: Plan | None
    subscription: Subscription | None
    upgrades: list[Plan]  # self-serve plans above the current one
    contact_sales: list[Plan]  # plans above it sold by hand (enterprise)


def plan_choice(*, workspace: Workspace) -> PlanChoice:
    """The workspace's plan, its subscription, and the plans it can move up to."""
    plans = list(Plan.objects.all())
    current = next((plan for plan in plans if plan.code == workspace.plan), None)
    floor = current.sort_order if current else -1
    above = [plan for plan in plans if plan.sort_order > floor]
    return PlanChoice(
        current=current,
        subscription=Subscription.objects.filter(workspace=workspace).first(),
        upgrades=[plan for plan in above if plan.self_serve and plan.price_cents > 0],
        contact_sales=[plan for plan in above if not plan.self_serve],
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
