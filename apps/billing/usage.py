"""Each workspace's daily usage pushed to Stripe as one billing meter event.

One UsageReport row per workspace and day, identifier `usage:<workspace id>:<day>`: the row
records when Stripe accepted it, so a retried push skips it; if we crash between Stripe's answer
and our commit, the retry sends the same identifier (and idempotency key) and Stripe refuses or
replays it instead of counting it twice. Days are UTC days, like the ledger's timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

import stripe
import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from .models import BillingCustomer, LedgerEntry, LedgerReason, UsageReport
from .stripe_client import stripe_client

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class UsagePushReport:
    sent: int  # meter events Stripe accepted now
    already: int  # sent by an earlier run (or known to Stripe already)
    idle: int  # customers with no usage that day: nothing to send
    failed: int  # Stripe refused or was unreachable: the row keeps the error, a retry resends

    def __str__(self) -> str:
        return (
            f"{self.sent} sent, {self.already} already sent, {self.idle} idle, {self.failed} failed"
        )


def usage_identifier(*, workspace_id: int, day: date) -> str:
    return f"usage:{workspace_id}:{day.isoformat()}"


def consumed_micros_by_workspace(*, day: date, workspace_ids: list[int]) -> dict[int, int]:
    """Credit consumed on `day` (UTC) by model calls and agent runs, per workspace: the sum of
    their debits, from the (workspace, created_at) index."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    rows = (
        LedgerEntry.objects.filter(
            workspace_id__in=workspace_ids,
            created_at__gte=start,
            created_at__lt=start + timedelta(days=1),
            delta_micros__lt=0,
        )
        .filter(
            Q(reason__startswith=LedgerReason.FEATURE_PREFIX)
            | Q(reason__startswith=LedgerReason.AGENT_RUN)
        )
        .values("workspace_id")
        .annotate(spent=Sum("delta_micros"))
    )
    return {row["workspace_id"]: -int(row["spent"]) for row in rows}


def _whole_credits(micros: int) -> int:
    return int((Decimal(micros) / settings.CREDIT_MICROS).to_integral_value(ROUND_HALF_UP))


def usage_push(*, day: date) -> UsagePushReport:
    """Send `day`'s consumed credits of every workspace with a Stripe customer as one meter
    event each; a day already sent is never sent again. Without Stripe configured: nothing."""
    if not settings.STRIPE_SECRET_KEY:
        log.info("usage_push.skipped", reason="STRIPE_SECRET_KEY is unset")
        return UsagePushReport(sent=0, already=0, idle=0, failed=0)
    customers = list(BillingCustomer.objects.order_by("workspace_id"))
    consumed = consumed_micros_by_workspace(
        day=day, workspace_ids=[customer.workspace_id for customer in customers]
    )
    counts = {"sent": 0, "already": 0, "idle": 0, "failed": 0}
    for customer in customers:
        value = _whole_credits(consumed.get(customer.workspace_id, 0))
        if value <= 0:
            counts["idle"] += 1
            continue
        counts[_push_one(customer=customer, day=day, value=value)] += 1
    report = UsagePushReport(**counts)
    log.info("usage_push.done", day=day.isoformat(), report=str(report))
    return report


def _push_one(*, customer: BillingCustomer, day: date, value: int) -> str:
    identifier = usage_identifier(workspace_id=customer.workspace_id, day=day)
    with transaction.atomic():
        UsageReport.objects.get_or_create(
            identifier=identifier,
            defaults={"workspace_id": customer.workspace_id, "day": day, "value": value},
        )
        # Locked while we talk to Stripe: a concurrent run waits, then sees sent_at.
        report = UsageReport.objects.select_for_update().get(identifier=identifier)
        if report.sent_at is not None:
            return "already"
        report.value = value
        # The end of the day, or now for today (Stripe refuses timestamps in the future).
        end = datetime.combine(day, time.max, tzinfo=UTC)
        timestamp = int(min(end, timezone.now()).timestamp())
        outcome = "sent"
        try:
            stripe_client().v1.billing.meter_events.create(
                params={
                    "event_name": settings.STRIPE_METER_EVENT_NAME,
                    "payload": {
                        "stripe_customer_id": customer.stripe_customer_id,
                        "value": str(value),
                    },
                    "identifier": identifier,
                    "timestamp": timestamp,
                },
                options={"idempotency_key": f"{identifier}:{value}"},
            )
        except stripe.InvalidRequestError as exc:
            if exc.param != "identifier":
                return _failed(report, exc)
            # Stripe already has this identifier: an earlier run was accepted, then lost.
            log.warning("usage_push.already_at_stripe", identifier=identifier)
            outcome = "already"
        except stripe.StripeError as exc:
            return _failed(report, exc)
        report.sent_at = timezone.now()
        report.error = ""
        report.save(update_fields=["value", "sent_at", "error"])
        return outcome


def _failed(report: UsageReport, exc: stripe.StripeError) -> str:
    report.error = f"{type(exc).__name__}: {exc.user_message or exc}"[:2000]
    report.save(update_fields=["value", "error"])
    log.error("usage_push.failed", identifier=report.identifier, error=report.error)
    return "failed"
