"""The Stripe fake's charges and refunds: a paid payment-mode Checkout Session leaves one
succeeded charge on its PaymentIntent, and POST /v1/refunds refunds it in part or in full,
sending `charge.refunded` with the charge's cumulative `amount_refunded`, as Stripe does.

A refund delivers a webhook: the event is created under the state lock and delivered after
releasing it (the delivery POSTs to our app)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .webhooks import event_create, event_deliver
from .wire import JSON, StripeFakeError, int_param, lookup, metadata_param, new_id

if TYPE_CHECKING:
    from .account import StripeFake

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def charge_create_for_session(fake: StripeFake, session: JSON) -> JSON:
    """The succeeded charge of a paid payment-mode session (on its `payment_intent`)."""
    charge = {
        "id": new_id("ch_"),
        "object": "charge",
        "amount": session["amount_total"],
        "amount_captured": session["amount_total"],
        "amount_refunded": 0,
        "captured": True,
        "currency": session["currency"],
        "customer": session["customer"],
        "paid": True,
        "payment_intent": session["payment_intent"],
        "refunded": False,
        "status": "succeeded",
        "created": fake.now(),
        "livemode": False,
    }
    fake.state.charges[charge["id"]] = charge
    return charge


def _charge_for(fake: StripeFake, params: JSON) -> JSON:
    charge_id, payment_intent = params.get("charge"), params.get("payment_intent")
    if charge_id and payment_intent:
        raise StripeFakeError(
            400, "You may only specify one of these parameters: charge, payment_intent."
        )
    if charge_id:
        return lookup(fake.state.charges, str(charge_id), "charge")
    if payment_intent:
        for charge in fake.state.charges.values():
            if charge["payment_intent"] == payment_intent:
                return charge
        raise StripeFakeError(
            404,
            f"No such payment_intent: '{payment_intent}'",
            param="payment_intent",
            code="resource_missing",
        )
    raise StripeFakeError(
        400,
        "One of the following params should be provided for this request: payment_intent or "
        "charge.",
        code="parameter_missing",
    )


def refund_create(fake: StripeFake, params: JSON) -> JSON:
    """POST /v1/refunds: refund `amount` cents (default: all that remains) of a charge, named
    by itself or by its PaymentIntent. Sends charge.refunded; returns the refund."""
    with fake.state.lock:
        charge = _charge_for(fake, params)
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise StripeFakeError(
                400,
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
            )
        amount = (
            int_param(params["amount"], "amount", minimum=1) if "amount" in params else remaining
        )
        if amount > remaining:
            raise StripeFakeError(
                400,
                f"Refund amount ({amount / 100:.2f} {charge['currency']}) is greater than "
                f"unrefunded amount on charge ({remaining / 100:.2f} {charge['currency']})",
                param="amount",
            )
        reason = params.get("reason") or None
        if reason is not None and reason not in REFUND_REASONS:
            raise StripeFakeError(
                400,
                f"Invalid reason: must be one of {', '.join(REFUND_REASONS)}",
                param="reason",
            )
        refund = {
            "id": new_id("re_"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "payment_intent": charge["payment_intent"],
            "currency": charge["currency"],
            "metadata": metadata_param(params),
            "reason": reason,
            "status": "succeeded",
            "created": fake.now(),
        }
        fake.state.refunds[refund["id"]] = refund
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        event = event_create(fake, "charge.refunded", charge, previous=previous)
    event_deliver(fake, event)
    return refund
