"""customer.subscription.* and invoice.paid events: a subscription's status sets the
workspace's plan (newest event wins), and each paid invoice grants the plan's credits once."""

from __future__ import annotations

from datetime import UTC, datetime

from apps.workspaces.models import Workspace

from ..checkout import ACTIVE_SUBSCRIPTION_STATUSES
from ..ledger import credits, ledger_post
from ..models import CheckoutKind, CheckoutSession, LedgerReason, Plan, Subscription
from .fields import (
    JSON,
    MICROS_PER_CENT,
    customer_for_update,
    dict_at,
    ignored,
    int_at,
    list_at,
    str_at,
)

# Subscription statuses that end the paid plan: the workspace falls back to free.
ENDED_SUBSCRIPTION_STATUSES = frozenset({"canceled", "unpaid", "incomplete_expired"})
FREE_PLAN = "free"


def _plan_for(*, workspace: Workspace, metadata: JSON, price_ids: list[str]) -> Plan | None:
    """The plan a subscription is for: a Stripe price configured on a plan, or the plan code in
    its metadata when one of our subscription Checkouts for this workspace sold that plan."""
    if price_ids:
        configured = (
            Plan.objects.filter(stripe_price_id__in=price_ids).exclude(stripe_price_id="").first()
        )
        if configured is not None:
            return configured
    code = metadata.get("plan_code")
    if not isinstance(code, str) or metadata.get("workspace_id") != str(workspace.pk):
        return None
    sold = CheckoutSession.objects.filter(
        workspace=workspace, kind=CheckoutKind.SUBSCRIPTION, plan_code=code
    ).exists()
    return Plan.objects.filter(code=code).first() if sold else None


def _period_end(obj: JSON) -> datetime | None:
    # Newer API versions keep the period on the items; older ones on the subscription.
    items = list_at(obj, "items", "data")
    end = int_at(items[0], "current_period_end") if items else 0
    end = end or int_at(obj, "current_period_end")
    return datetime.fromtimestamp(end, tz=UTC) if end else None


def _cancel_at(obj: JSON) -> datetime | None:
    # Cancelled "at period end" in the portal: Stripe sets cancel_at to the period's end.
    when = int_at(obj, "cancel_at")
    return datetime.fromtimestamp(when, tz=UTC) if when else None


def subscription_changed(event: JSON) -> str:
    obj = event["data"]["object"]
    customer = customer_for_update(obj)
    if customer is None:
        return ignored(event, "unknown customer")
    workspace = customer.workspace
    subscription_id = str_at(obj, "id")
    status = (
        "canceled" if event["type"] == "customer.subscription.deleted" else str_at(obj, "status")
    )
    if not subscription_id or not status:
        return ignored(event, "subscription without id or status")
    row = Subscription.objects.select_for_update().filter(workspace=workspace).first()
    same = row is not None and row.stripe_subscription_id == subscription_id
    if row is not None and same and event["created"] < row.event_created:
        return ignored(event, "older than the subscription event already applied")
    if (
        row is not None
        and not same
        and row.status in ACTIVE_SUBSCRIPTION_STATUSES
        and status not in ACTIVE_SUBSCRIPTION_STATUSES
    ):
        return ignored(event, "a replaced subscription")
    price_ids = [str_at(dict_at(item, "price"), "id") for item in list_at(obj, "items", "data")]
    plan = _plan_for(workspace=workspace, metadata=dict_at(obj, "metadata"), price_ids=price_ids)
    plan_code = plan.code if plan else (row.plan_code if row is not None and same else "")
    if not plan_code:
        return ignored(event, "unknown plan")
    values = {
        "stripe_subscription_id": subscription_id,
        "plan_code": plan_code,
        "status": status,
        "current_period_end": _period_end(obj),
        "cancel_at_period_end": obj.get("cancel_at_period_end") is True,
        "cancel_at": _cancel_at(obj),
        "event_created": event["created"],
    }
    if row is None:
        Subscription.objects.create(workspace=workspace, **values)
    else:
        for name, value in values.items():
            setattr(row, name, value)
        row.save(update_fields=[*values, "updated_at"])
    if status in ACTIVE_SUBSCRIPTION_STATUSES:
        new_plan = plan_code
    elif status in ENDED_SUBSCRIPTION_STATUSES:
        new_plan = FREE_PLAN
    else:  # incomplete: the first payment is pending, the plan waits for it
        new_plan = workspace.plan
    if new_plan != workspace.plan:
        Workspace.objects.filter(pk=workspace.pk).update(plan=new_plan)
    cancelling = values["cancel_at_period_end"] and status in ACTIVE_SUBSCRIPTION_STATUSES
    ending = " (cancels at period end)" if cancelling else ""
    return f"applied: subscription {status}{ending}, workspace plan {new_plan}"


def _invoice_subscription(obj: JSON) -> tuple[str, JSON]:
    """The invoice's subscription id and the subscription's metadata as the invoice saw it."""
    details = dict_at(obj, "parent", "subscription_details")
    subscription_id = str_at(details, "subscription") or str_at(obj, "subscription")
    return subscription_id, dict_at(details, "metadata") or dict_at(
        obj, "subscription_details", "metadata"
    )


def invoice_paid(event: JSON) -> str:
    obj = event["data"]["object"]
    customer = customer_for_update(obj)
    if customer is None:
        return ignored(event, "unknown customer")
    workspace = customer.workspace
    invoice_id = str_at(obj, "id")
    if not invoice_id:
        return ignored(event, "invoice without id")
    subscription_id, metadata = _invoice_subscription(obj)
    if not subscription_id:
        return ignored(event, "not a subscription invoice")
    known = Subscription.objects.filter(
        workspace=workspace, stripe_subscription_id=subscription_id
    ).first()
    price_ids = [
        str_at(dict_at(line, "pricing", "price_details"), "price")
        or str_at(dict_at(line, "price"), "id")
        for line in list_at(obj, "lines", "data")
    ]
    plan = _plan_for(workspace=workspace, metadata=metadata, price_ids=price_ids)
    if plan is None and known is not None:
        plan = Plan.objects.filter(code=known.plan_code).first()
    if plan is None:
        return ignored(event, "unknown plan")
    paid_cents = int_at(obj, "amount_paid")
    posting = ledger_post(
        workspace_id=workspace.pk,
        delta_micros=plan.monthly_credit_micros,
        reason=LedgerReason.PLAN_GRANT,
        idempotency_key=f"invoice:{invoice_id}",
        metadata={
            "plan": plan.code,
            "invoice": invoice_id,
            "subscription": subscription_id,
            "period_start": int_at(obj, "period_start"),
            "period_end": int_at(obj, "period_end"),
            "event_id": event["id"],
        },
        revenue_micros=paid_cents * MICROS_PER_CENT,
    )
    if not posting.created:
        return "ignored: invoice already granted"
    return f"applied: {plan.code} grant of {credits(plan.monthly_credit_micros):,} credits"
