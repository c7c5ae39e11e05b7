"""Stripe webhooks (DESIGN §5): verified on the raw body, applied once per event id.

- The signature is Stripe's (`Stripe-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")`), checked
  by the SDK with a 300 s tolerance before anything is parsed; a bad one changes nothing.
- The StripeEvent row (unique event id) is inserted in the same transaction as the event's
  effect: a replay finds the row and does nothing; two deliveries racing block on the unique
  index and the loser sees the winner's row. Ledger writes carry their own keys
  (`topup:<session>`, `invoice:<invoice>`), a second line of defence.
- What a Checkout sold is our CheckoutSession row's say, never the event's metadata; the plan of
  a subscription is a configured Stripe price, or metadata that one of our subscription
  Checkouts for that workspace and plan vouches for.
- Subscription changes apply only when the event is at least as new as the last one applied
  (Stripe does not deliver in order).
- Events we cannot place (unknown customer or session) are stored with why, and answered 200:
  Stripe would otherwise retry them for days.

No balance push to the gateway is needed after a grant: the gateway's credit scope re-reads the
ledger balance at the next reservation (apps.llm.core.budget).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe
import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.common.errors import ApplicationError
from apps.workspaces.models import Workspace

from .checkout import ACTIVE_SUBSCRIPTION_STATUSES
from .ledger import MICROS_PER_USD, credits, ledger_post
from .models import (
    BillingCustomer,
    CheckoutKind,
    CheckoutSession,
    LedgerReason,
    Plan,
    StripeEvent,
    Subscription,
)

log = structlog.get_logger(__name__)

MICROS_PER_CENT = MICROS_PER_USD // 100
# Subscription statuses that end the paid plan: the workspace falls back to free.
ENDED_SUBSCRIPTION_STATUSES = frozenset({"canceled", "unpaid", "incomplete_expired"})
FREE_PLAN = "free"

JSON = dict[str, Any]


class WebhookRejectedError(ApplicationError):
    """Not a genuine, well-formed Stripe event: answered 400, nothing stored."""

    code = "invalid_webhook"


@dataclass(frozen=True, slots=True)
class WebhookReceipt:
    event_id: str
    type: str
    outcome: str  # "applied: …" / "ignored: …"; for a duplicate, the first delivery's
    duplicate: bool


def stripe_webhook_receive(*, payload: bytes, signature: str | None) -> WebhookReceipt:
    """Verify, record and apply one Stripe webhook delivery, exactly once per event id.
    Raises WebhookRejectedError for a bad signature or a malformed event."""
    _verify(payload, signature)
    event = _parse(payload)
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = StripeEvent.objects.create(
                    event_id=event["id"],
                    type=event["type"],
                    created=event["created"],
                    payload=event,
                )
        except IntegrityError:
            first = StripeEvent.objects.filter(event_id=event["id"]).first()
            log.info("stripe_webhook.duplicate", event_id=event["id"], type=event["type"])
            return WebhookReceipt(
                event["id"], event["type"], first.outcome if first else "", duplicate=True
            )
        handler = HANDLERS.get(event["type"])
        outcome = handler(event) if handler else "ignored: event type not used"
        record.outcome = outcome[:200]
        record.processed_at = timezone.now()
        record.save(update_fields=["outcome", "processed_at"])
    log.info("stripe_webhook.received", event_id=event["id"], type=event["type"], outcome=outcome)
    return WebhookReceipt(event["id"], event["type"], outcome, duplicate=False)


def _verify(payload: bytes, signature: str | None) -> None:
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"),
            signature,
            settings.STRIPE_WEBHOOK_SECRET,
            settings.STRIPE_WEBHOOK_TOLERANCE,
        )
    except UnicodeDecodeError:
        raise WebhookRejectedError("The body is not UTF-8 text.") from None
    except stripe.SignatureVerificationError as exc:
        log.warning("stripe_webhook.bad_signature", reason=str(exc))
        raise WebhookRejectedError(f"Signature verification failed: {exc}") from None


def _parse(payload: bytes) -> JSON:
    """The event, checked for the fields every handler relies on."""
    try:
        event = json.loads(payload)
    except ValueError:
        raise WebhookRejectedError("The body is not valid JSON.") from None
    if not isinstance(event, dict):
        raise WebhookRejectedError("The body is not a Stripe event object.")
    for name, kind in (("id", str), ("type", str), ("created", int), ("data", dict)):
        value = event.get(name)
        if not isinstance(value, kind) or isinstance(value, bool) or value in ("", {}):
            raise WebhookRejectedError(f"The event has no valid `{name}`.")
    if not isinstance(event["data"].get("object"), dict):
        raise WebhookRejectedError("The event has no `data.object`.")
    if len(event["id"]) > 255 or len(event["type"]) > 100:
        raise WebhookRejectedError("The event's `id` or `type` is too long.")
    return event


# --- field access: a signed event can still hold a shape we do not expect ---------------------


def _str(obj: JSON, key: str) -> str:
    value = obj.get(key)
    if isinstance(value, dict):  # an expanded object: its id
        value = value.get("id")
    return value if isinstance(value, str) else ""


def _int(obj: JSON, key: str) -> int:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _dict(obj: JSON, *path: str) -> JSON:
    for key in path:
        value = obj.get(key)
        obj = value if isinstance(value, dict) else {}
    return obj


def _list(obj: JSON, *path: str) -> list[JSON]:
    *parents, last = path
    value = _dict(obj, *parents).get(last)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _customer(obj: JSON) -> BillingCustomer | None:
    """Our customer row for the object's `customer`, locked: one workspace's events apply one
    at a time."""
    customer_id = _str(obj, "customer")
    if not customer_id:
        return None
    return (
        BillingCustomer.objects.select_for_update()
        .select_related("workspace")
        .filter(stripe_customer_id=customer_id)
        .first()
    )


def _ignored(event: JSON, why: str) -> str:
    log.warning("stripe_webhook.ignored", event_id=event["id"], type=event["type"], why=why)
    return f"ignored: {why}"


# --- checkout ---------------------------------------------------------------------------------


def _checkout_completed(event: JSON) -> str:
    obj = event["data"]["object"]
    session = (
        CheckoutSession.objects.select_for_update()
        .filter(stripe_session_id=_str(obj, "id"))
        .first()
    )
    if session is None:
        return _ignored(event, "unknown checkout session")
    customer = _customer(obj)
    if customer is None or customer.workspace_id != session.workspace_id:
        return _ignored(event, "unknown customer")
    if _str(obj, "payment_status") not in ("paid", "no_payment_required"):
        # Delayed payment methods: checkout.session.async_payment_succeeded follows.
        return _ignored(event, "not paid yet")
    if session.kind == CheckoutKind.TOPUP:
        if _str(obj, "mode") != "payment":
            return _ignored(event, "a top-up session that is not a payment")
        paid_cents = _int(obj, "amount_total")
        if paid_cents * MICROS_PER_CENT != session.amount_micros:
            log.warning(
                "stripe_webhook.topup_amount_differs",
                session=session.stripe_session_id,
                sold_micros=session.amount_micros,
                paid_cents=paid_cents,
            )
        posting = ledger_post(
            workspace_id=session.workspace_id,
            delta_micros=session.amount_micros,
            reason=LedgerReason.TOPUP,
            idempotency_key=f"topup:{session.stripe_session_id}",
            metadata={"stripe_session_id": session.stripe_session_id, "event_id": event["id"]},
            revenue_micros=paid_cents * MICROS_PER_CENT,
        )
        outcome = (
            f"applied: top-up of {credits(session.amount_micros):,} credits"
            if posting.created
            else "ignored: top-up already granted"
        )
    else:
        outcome = "applied: subscription checkout complete"
    if session.status != "complete":
        session.status = "complete"
        session.save(update_fields=["status", "updated_at"])
    return outcome


def _checkout_expired(event: JSON) -> str:
    obj = event["data"]["object"]
    updated = CheckoutSession.objects.filter(
        stripe_session_id=_str(obj, "id"), status="open"
    ).update(status="expired", updated_at=timezone.now())
    return "applied: checkout expired" if updated else _ignored(event, "unknown checkout session")


# --- subscriptions and invoices ---------------------------------------------------------------


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
    items = _list(obj, "items", "data")
    end = _int(items[0], "current_period_end") if items else 0
    end = end or _int(obj, "current_period_end")
    return datetime.fromtimestamp(end, tz=UTC) if end else None


def _subscription_changed(event: JSON) -> str:
    obj = event["data"]["object"]
    customer = _customer(obj)
    if customer is None:
        return _ignored(event, "unknown customer")
    workspace = customer.workspace
    subscription_id = _str(obj, "id")
    status = "canceled" if event["type"] == "customer.subscription.deleted" else _str(obj, "status")
    if not subscription_id or not status:
        return _ignored(event, "subscription without id or status")
    row = Subscription.objects.select_for_update().filter(workspace=workspace).first()
    same = row is not None and row.stripe_subscription_id == subscription_id
    if row is not None and same and event["created"] < row.event_created:
        return _ignored(event, "older than the subscription event already applied")
    if (
        row is not None
        and not same
        and row.status in ACTIVE_SUBSCRIPTION_STATUSES
        and status not in ACTIVE_SUBSCRIPTION_STATUSES
    ):
        return _ignored(event, "a replaced subscription")
    price_ids = [_str(_dict(item, "price"), "id") for item in _list(obj, "items", "data")]
    plan = _plan_for(workspace=workspace, metadata=_dict(obj, "metadata"), price_ids=price_ids)
    plan_code = plan.code if plan else (row.plan_code if row is not None and same else "")
    if not plan_code:
        return _ignored(event, "unknown plan")
    values = {
        "stripe_subscription_id": subscription_id,
        "plan_code": plan_code,
        "status": status,
        "current_period_end": _period_end(obj),
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
    return f"applied: subscription {status}, workspace plan {new_plan}"


def _invoice_subscription(obj: JSON) -> tuple[str, JSON]:
    """The invoice's subscription id and the subscription's metadata as the invoice saw it."""
    details = _dict(obj, "parent", "subscription_details")
    subscription_id = _str(details, "subscription") or _str(obj, "subscription")
    return subscription_id, _dict(details, "metadata") or _dict(
        obj, "subscription_details", "metadata"
    )


def _invoice_paid(event: JSON) -> str:
    obj = event["data"]["object"]
    customer = _customer(obj)
    if customer is None:
        return _ignored(event, "unknown customer")
    workspace = customer.workspace
    invoice_id = _str(obj, "id")
    if not invoice_id:
        return _ignored(event, "invoice without id")
    subscription_id, metadata = _invoice_subscription(obj)
    if not subscription_id:
        return _ignored(event, "not a subscription invoice")
    known = Subscription.objects.filter(
        workspace=workspace, stripe_subscription_id=subscription_id
    ).first()
    price_ids = [
        _str(_dict(line, "pricing", "price_details"), "price") or _str(_dict(line, "price"), "id")
        for line in _list(obj, "lines", "data")
    ]
    plan = _plan_for(workspace=workspace, metadata=metadata, price_ids=price_ids)
    if plan is None and known is not None:
        plan = Plan.objects.filter(code=known.plan_code).first()
    if plan is None:
        return _ignored(event, "unknown plan")
    paid_cents = _int(obj, "amount_paid")
    posting = ledger_post(
        workspace_id=workspace.pk,
        delta_micros=plan.monthly_credit_micros,
        reason=LedgerReason.PLAN_GRANT,
        idempotency_key=f"invoice:{invoice_id}",
        metadata={
            "plan": plan.code,
            "invoice": invoice_id,
            "subscription": subscription_id,
            "period_start": _int(obj, "period_start"),
            "period_end": _int(obj, "period_end"),
            "event_id": event["id"],
        },
        revenue_micros=paid_cents * MICROS_PER_CENT,
    )
    if not posting.created:
        return "ignored: invoice already granted"
    return f"applied: {plan.code} grant of {credits(plan.monthly_credit_micros):,} credits"


HANDLERS: dict[str, Callable[[JSON], str]] = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "checkout.session.expired": _checkout_expired,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "invoice.paid": _invoice_paid,
}
