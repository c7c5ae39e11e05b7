"""charge.refunded events: a refund of a top-up (made in the Stripe Dashboard or through the
API) takes the refunded credit and revenue back, once.

The charge carries `amount_refunded`, the cumulative amount refunded so far, and Stripe does
not deliver in order. So each event posts only what is newly refunded: the cumulative amount
less what this charge's refunds already took back in our ledger, under the customer's lock
(one customer's events apply one at a time). A replay, a concurrent duplicate or an older event
arriving late (cumulative 3 after 5) finds nothing new and posts nothing; the key
`refund:<charge>:<cumulative cents>` is a second line of defence. A top-up is never taken back
by more than it granted, whatever the events say.

The refund may take the balance below zero: the credit may already be spent. That is a debt,
recorded honestly, and the paywall applies until a top-up or plan grant pays it off — the same
policy as outcome billing (apps.billing.outcomes). Refusing would leave the money returned
and the credit kept.

Only top-ups we sold are refunded here. A refunded subscription invoice, or a payment we do not
know, is stored as ignored (answered 200): what a refunded month should cost in credit is an
operator's decision (`manage.py credits take`).
"""

from __future__ import annotations

from django.db.models import Sum

from ..ledger import credits, ledger_post
from ..models import CheckoutKind, CheckoutSession, LedgerEntry, LedgerReason
from .fields import JSON, MICROS_PER_CENT, customer_for_update, ignored, int_at, str_at

TOPUP_CURRENCY = "usd"
# Stripe's ids are ~30 characters; this keeps the ledger key within its 200.
MAX_CHARGE_ID = 150


def _refunded_micros(*, workspace_id: int, **metadata: str) -> int:
    """What refund entries with this metadata took back so far (a positive amount)."""
    taken = LedgerEntry.objects.filter(
        workspace_id=workspace_id,
        reason=LedgerReason.REFUND,
        **{f"metadata__{name}": value for name, value in metadata.items()},
    ).aggregate(total=Sum("delta_micros", default=0))["total"]
    return -int(taken)


def charge_refunded(event: JSON) -> str:
    obj = event["data"]["object"]
    customer = customer_for_update(obj)
    if customer is None:
        return ignored(event, "unknown customer")
    charge_id = str_at(obj, "id")
    payment_intent = str_at(obj, "payment_intent")
    if not charge_id or not payment_intent or len(charge_id) > MAX_CHARGE_ID:
        return ignored(event, "a charge without a valid id or payment intent")
    session = CheckoutSession.objects.filter(
        workspace_id=customer.workspace_id,
        kind=CheckoutKind.TOPUP,
        status="complete",
        stripe_payment_intent_id=payment_intent,
    ).first()
    if session is None:
        return ignored(event, "not a top-up we sold (subscription refunds are left to operators)")
    if str_at(obj, "currency").lower() not in ("", TOPUP_CURRENCY):
        return ignored(event, f"a refund in {str_at(obj, 'currency')}, not {TOPUP_CURRENCY}")
    # Never more than the top-up granted (also keeps an absurd amount out of the key).
    refunded_cents = min(int_at(obj, "amount_refunded"), session.amount_micros // MICROS_PER_CENT)
    if refunded_cents <= 0:
        return ignored(event, "nothing refunded")
    workspace_id = session.workspace_id
    by_charge = _refunded_micros(workspace_id=workspace_id, stripe_charge_id=charge_id)
    by_session = _refunded_micros(
        workspace_id=workspace_id, stripe_session_id=session.stripe_session_id
    )
    newly = min(
        refunded_cents * MICROS_PER_CENT - by_charge,
        session.amount_micros - by_session,
    )
    if newly <= 0:
        return "ignored: refund already applied"
    posting = ledger_post(
        workspace_id=workspace_id,
        delta_micros=-newly,
        reason=LedgerReason.REFUND,
        idempotency_key=f"refund:{charge_id}:{refunded_cents}",
        metadata={
            "stripe_charge_id": charge_id,
            "stripe_payment_intent_id": payment_intent,
            "stripe_session_id": session.stripe_session_id,
            "amount_refunded_cents": refunded_cents,
            "event_id": event["id"],
        },
        revenue_micros=-newly,
    )
    if not posting.created:
        return "ignored: refund already applied"
    return f"applied: refund of {credits(newly):,} credits"
