"""Finance reads across every workspace (staff only): the per-workspace money summary of a
period and the ledger export. Each is one GROUP BY / one streamed scan over the ledger's
`created_at` index — no query per workspace or per row.

Finance sees money, not prompts: nothing here reads traces or messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.db.models import Q, Sum

from apps.workspaces.models import Workspace

from .ledger import MICROS_PER_USD, credits
from .models import CreditBalance, LedgerEntry, LedgerReason

# Provider cost above this share of revenue is flagged red.
COST_TO_REVENUE_FLAG = Decimal("0.30")

GRANTED = Q(reason__in=[LedgerReason.PLAN_GRANT, LedgerReason.TOPUP]) | Q(
    reason=LedgerReason.ADJUSTMENT, delta_micros__gt=0
)
# Refunds are neither granted nor consumed credit: they take money back (negative revenue) and
# the credit it bought, so they show in revenue and the balance only.
DEBIT = Q(delta_micros__lt=0) & ~Q(reason=LedgerReason.REFUND)
# Debits that paid a model provider: their delta is the cost (metadata.cost_micros says so too).
PROVIDER_COST = DEBIT & (
    Q(reason__startswith=LedgerReason.FEATURE_PREFIX) | Q(reason=LedgerReason.AGENT_RUN)
)


@dataclass(frozen=True, slots=True)
class FinanceRow:
    """One workspace's money in a period; `balance_micros` is its balance now."""

    slug: str
    name: str
    granted_micros: int = 0
    consumed_micros: int = 0
    revenue_micros: int = 0
    cost_micros: int = 0
    balance_micros: int = 0

    @property
    def granted_credits(self) -> Decimal:
        return credits(self.granted_micros)

    @property
    def consumed_credits(self) -> Decimal:
        return credits(self.consumed_micros)

    @property
    def balance_credits(self) -> Decimal:
        return credits(self.balance_micros)

    @property
    def revenue_usd(self) -> Decimal:
        return Decimal(self.revenue_micros) / MICROS_PER_USD

    @property
    def cost_usd(self) -> Decimal:
        return Decimal(self.cost_micros) / MICROS_PER_USD

    @property
    def ratio(self) -> Decimal | None:
        """Provider cost ÷ revenue; None without revenue (refunds can make a period's net
        revenue negative: no ratio, and cost is flagged as without revenue)."""
        if self.revenue_micros <= 0:
            return None
        return Decimal(self.cost_micros) / Decimal(self.revenue_micros)

    @property
    def flag(self) -> str:
        """Why the row is red ("" when it is not)."""
        ratio = self.ratio
        if ratio is None:
            return "no revenue" if self.cost_micros > 0 else ""
        return f"above {COST_TO_REVENUE_FLAG:.0%}" if ratio > COST_TO_REVENUE_FLAG else ""


@dataclass(frozen=True, slots=True)
class FinanceOverview:
    start: datetime
    end: datetime  # exclusive
    rows: list[FinanceRow]
    total: FinanceRow


def finance_overview(*, start: datetime, end: datetime) -> FinanceOverview:
    """Credits granted and consumed, revenue (net of refunds) and provider cost per workspace
    in [start, end), with every workspace's balance; the costliest workspaces first."""
    sums: dict[int, tuple[int, int, int, int]] = {
        workspace_id: (granted, debited, revenue, cost)
        for workspace_id, granted, debited, revenue, cost in LedgerEntry.objects.filter(
            created_at__gte=start, created_at__lt=end
        )
        .values("workspace_id")
        .annotate(
            granted=Sum("delta_micros", filter=GRANTED, default=0),
            debited=Sum("delta_micros", filter=DEBIT, default=0),
            revenue=Sum("revenue_micros", default=0),
            cost=Sum("delta_micros", filter=PROVIDER_COST, default=0),
        )
        .values_list("workspace_id", "granted", "debited", "revenue", "cost")
        .order_by()
    }
    balances = dict(CreditBalance.objects.values_list("workspace_id", "balance_micros"))
    rows = []
    for workspace_id, slug, name in (
        Workspace.objects.tenants().values_list("id", "slug", "name").order_by("slug")
    ):
        granted, debited, revenue, cost = sums.get(workspace_id, (0, 0, 0, 0))
        rows.append(
            FinanceRow(
                slug=slug,
                name=name,
                granted_micros=granted,
                consumed_micros=-debited,
                revenue_micros=revenue,
                cost_micros=-cost,
                balance_micros=balances.get(workspace_id, 0),
            )
        )
    rows.sort(key=lambda row: -row.cost_micros)
    total = FinanceRow(
        slug="",
        name="All workspaces",
        granted_micros=sum(row.granted_micros for row in rows),
        consumed_micros=sum(row.consumed_micros for row in rows),
        revenue_micros=sum(row.revenue_micros for row in rows),
        cost_micros=sum(row.cost_micros for row in rows),
        balance_micros=sum(row.balance_micros for row in rows),
    )
    return FinanceOverview(start=start, end=end, rows=rows, total=total)


LEDGER_CSV_HEADER = (
    "id",
    "created_at",
    "workspace",
    "reason",
    "delta_micros",
    "credits",
    "balance_after_micros",
    "revenue_micros",
    "idempotency_key",
    "metadata",
)


def ledger_export_rows(
    *, start: datetime, end: datetime, workspace: Workspace | None = None
) -> Iterator[tuple[object, ...]]:
    """The header, then the ledger entries of [start, end) oldest first, streamed from the
    database in chunks (an export of a year does not sit in memory)."""
    entries = LedgerEntry.objects.filter(created_at__gte=start, created_at__lt=end)
    if workspace is not None:
        entries = entries.filter(workspace=workspace)
    yield LEDGER_CSV_HEADER
    for row in (
        entries.order_by("created_at", "id")
        .values_list(
            "id",
            "created_at",
            "workspace__slug",
            "reason",
            "delta_micros",
            "balance_after_micros",
            "revenue_micros",
            "idempotency_key",
            "metadata",
        )
        .iterator(chunk_size=2_000)
    ):
        entry_id, created_at, slug, reason, delta, after, revenue, key, metadata = row
        yield (
            entry_id,
            created_at.astimezone(UTC).isoformat(),
            slug,
            reason,
            delta,
            credits(delta),
            after,
            revenue,
            key,
            json.dumps(metadata, sort_keys=True),
        )
