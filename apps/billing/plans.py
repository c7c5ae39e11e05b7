"""Plans as data (billing.Plan rows, seeded by migration 0002) and their monthly credit grants.

A workspace on a plan gets the plan's monthly credit once per calendar month (UTC): when it is
created (for the current month) and then from the beat task, idempotent per workspace and month
(key `plan_grant:<workspace id>:<YYYY-MM>`). Unused credit rolls over: grants add up, nothing
expires. Workspaces with an active Stripe subscription are skipped: their plan is paid by
invoices, which grant the credit themselves (`invoice:<id>`), so a month is never granted twice.

A plan also bounds a workspace's documents (RAG): how many it holds and how large each may be
(`plan_document_limits`, enforced by apps.rag when a document is added).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from django.conf import settings
from django.utils import timezone

from apps.workspaces.models import Workspace

from .ledger import Posting, ledger_post
from .models import LedgerReason, Plan, Subscription

log = structlog.get_logger(__name__)

FALLBACK_PLAN = "free"
# Stripe's statuses of a subscription that is paid for (or on trial): invoices grant its credit.
SUBSCRIBED = ("active", "trialing")


def plan_get(*, code: str) -> Plan:
    """The plan called `code`; an unknown code gets the free plan's terms (and is logged)."""
    found = Plan.objects.filter(code=code).first()
    if found is not None:
        return found
    log.warning("billing.plan_unknown", plan=code, using=FALLBACK_PLAN)
    return Plan.objects.get(code=FALLBACK_PLAN)


@dataclass(frozen=True, slots=True)
class RagLimits:
    """A plan's own document limits; None: the deployment's setting (RAG_MAX_DOCUMENTS,
    RAG_MAX_FILE_BYTES)."""

    rag_max_documents: int | None = None
    rag_max_file_bytes: int | None = None


# Document limits by plan code; pro, and any plan not listed (a custom plan row), take the
# settings.
PLAN_RAG_LIMITS: dict[str, RagLimits] = {
    "free": RagLimits(rag_max_documents=100, rag_max_file_bytes=10_000_000),
    "enterprise": RagLimits(rag_max_documents=20_000, rag_max_file_bytes=50_000_000),
}


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    """What a workspace's plan allows of documents, with the plan's name for messages."""

    plan: str  # "Free"
    max_documents: int
    max_file_bytes: int


def plan_document_limits(*, workspace: Workspace) -> DocumentLimits:
    """The document limits of the workspace's plan (an unknown plan code gets free's)."""
    plan = plan_get(code=workspace.plan)
    own = PLAN_RAG_LIMITS.get(plan.code, RagLimits())
    return DocumentLimits(
        plan=plan.name,
        max_documents=own.rag_max_documents or settings.RAG_MAX_DOCUMENTS,
        max_file_bytes=own.rag_max_file_bytes or settings.RAG_MAX_FILE_BYTES,
    )


def low_credit_micros(*, workspace: Workspace) -> int:
    """Below this balance the workspace is warned that credit runs low: a share
    (`BILLING_LOW_CREDIT_PERCENT`) of its plan's monthly credit; 0 (never) without one."""
    monthly = plan_get(code=workspace.plan).monthly_credit_micros
    return monthly * settings.BILLING_LOW_CREDIT_PERCENT // 100


def _month(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m")


def plan_grant_month(*, workspace: Workspace, when: datetime | None = None) -> Posting | None:
    """Grant the workspace's plan credit for the month of `when` (default now, UTC), once.
    None when the plan grants nothing. Joins the caller's transaction when there is one."""
    plan = plan_get(code=workspace.plan)
    if plan.monthly_credit_micros <= 0:
        return None
    month = _month(when or timezone.now())
    return ledger_post(
        workspace_id=workspace.pk,
        delta_micros=plan.monthly_credit_micros,
        reason=LedgerReason.PLAN_GRANT,
        idempotency_key=f"plan_grant:{workspace.pk}:{month}",
        metadata={"plan": plan.code, "month": month},
    )


@dataclass(frozen=True, slots=True)
class GrantReport:
    granted: int  # workspaces credited now
    already: int  # granted before for this month
    subscribed: int  # skipped: an active subscription's invoices grant their credit
    nothing: int  # skipped: the plan grants nothing

    def __str__(self) -> str:
        return (
            f"{self.granted} granted, {self.already} already granted this month, "
            f"{self.subscribed} skipped (subscription), {self.nothing} skipped (no grant)"
        )


def all_workspaces_grant_monthly(*, now: datetime | None = None) -> GrantReport:
    """Every workspace's plan credit for the current month (UTC), except subscribed ones."""
    now = now or timezone.now()
    subscribed_ids = set(
        Subscription.objects.filter(status__in=SUBSCRIBED).values_list("workspace_id", flat=True)
    )
    granted = already = subscribed = nothing = 0
    for workspace in Workspace.objects.tenants().order_by("pk").iterator():
        if workspace.pk in subscribed_ids:
            subscribed += 1
            continue
        posting = plan_grant_month(workspace=workspace, when=now)
        if posting is None:
            nothing += 1
        elif posting.created:
            granted += 1
        else:
            already += 1
    report = GrantReport(granted=granted, already=already, subscribed=subscribed, nothing=nothing)
    log.info("billing.monthly_grants", month=_month(now), report=str(report))
    return report
