"""checkout.session.* events: a paid top-up grants its credits once, a paid subscription
Checkout only completes our session row (the subscription events set the plan), an expired one
closes it. A completed session keeps its PaymentIntent id: refunds are found by it."""

from __future__ import annotations

import structlog
from django.utils import timezone

from ..ledger import credits, ledger_post
from ..models import CheckoutKind, CheckoutSession, LedgerReason
from .fields import JSON, MICROS_PER_CENT, customer_for_update, ignored, int_at, str_at

log = structlog.get_logger(__name__)


def checkout_completed(event: JSON) -> str:
    obj = event["data"]["object"]
    session = (
        CheckoutSession.objects.select_for_update()
        .filter(stripe_session_id=str_at(obj, "id"))
        .first()
    )
    if session is None:
        return ignored(event, "unknown checkout session")
    customer = customer_for_update(obj)
    if customer is None or customer.workspace_id != session.workspace_id:
        return ignored(event, "unknown customer")
    if str_at(obj, "payment_status") not in ("paid", "no_payment_required"):
        # Delayed payment methods: checkout.session.async_payment_succeeded follows.
        return ignored(event, "not paid yet")
    if session.kind == CheckoutKind.TOPUP:
        if str_at(obj, "mode") != "payment":
            return ignored(event, "a top-up session that is not a payment")
        paid_cents = int_at(obj, "amount_total")
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
    changed = []
    if session.status != "complete":
        session.status = "complete"
        changed.append("status")
    # What a later charge.refunded names: kept once known (a replay does not overwrite it).
    payment_intent = str_at(obj, "payment_intent")
    if payment_intent and len(payment_intent) <= 255 and not session.stripe_payment_intent_id:
        session.stripe_payment_intent_id = payment_intent
        changed.append("stripe_payment_intent_id")
    if changed:
        session.save(update_fields=[*changed, "updated_at"])
    return outcome


def checkout_expired(event: JSON) -> str:
    obj = event["data"]["object"]
    updated = CheckoutSession.objects.filter(
        stripe_session_id=str_at(obj, "id"), status="open"
    ).update(status="expired", updated_at=timezone.now())
    return "applied: checkout expired" if updated else ignored(event, "unknown checkout session")
