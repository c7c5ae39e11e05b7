"""The Stripe fake's Checkout Sessions: POST/GET /v1/checkout/sessions[/{id}], and completing
one when the customer pays on the hosted page (what it sold is created, webhooks are sent)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .customers import customer_create, customer_get
from .refunds import charge_create_for_session
from .subscriptions import invoice_paid, subscription_create_for_session
from .webhooks import event_create, event_deliver
from .wire import (
    JSON,
    StripeFakeError,
    int_param,
    lookup,
    metadata_param,
    new_id,
    public,
    required_param,
)

if TYPE_CHECKING:
    from .account import StripeFake

CHECKOUT_LIFETIME_SECONDS = 24 * 3600


def checkout_session_create(fake: StripeFake, params: JSON) -> JSON:
    """The new open session, with the fake's own `_` keys (render it through `public`)."""
    mode = required_param(params, "mode")
    if mode not in ("payment", "subscription"):
        raise StripeFakeError(400, "Invalid mode: must be one of payment or subscription.")
    customer = params.get("customer")
    if customer:
        customer_get(fake, customer)
    items = params.get("line_items")
    if not isinstance(items, list) or not items:
        raise StripeFakeError(
            400,
            "line_items is required in payment and subscription mode.",
            param="line_items",
            code="parameter_missing",
        )
    lines = [_line_item(item, index, mode) for index, item in enumerate(items)]
    now = fake.now()
    session_id = new_id("cs_test_", 58)
    session = {
        "id": session_id,
        "object": "checkout.session",
        "mode": mode,
        "status": "open",
        "payment_status": "unpaid",
        "customer": customer or None,
        "client_reference_id": params.get("client_reference_id") or None,
        "metadata": metadata_param(params),
        "currency": lines[0]["currency"],
        "amount_subtotal": sum(line["amount"] for line in lines),
        "amount_total": sum(line["amount"] for line in lines),
        "success_url": params.get("success_url") or None,
        "cancel_url": params.get("cancel_url") or None,
        "url": f"{fake.base_url}/c/pay/{session_id}",
        "payment_intent": None,
        "subscription": None,
        "invoice": None,
        "created": now,
        "expires_at": now + CHECKOUT_LIFETIME_SECONDS,
        "livemode": False,
    }
    subscription_data = params.get("subscription_data") or {}
    if not isinstance(subscription_data, dict):
        raise StripeFakeError(400, "Invalid object", param="subscription_data")
    # Not part of Stripe's session object: what completing the session will create.
    session["_lines"] = lines
    session["_subscription_metadata"] = metadata_param(subscription_data)
    fake.state.sessions[session_id] = session
    return session


def _line_item(item: Any, index: int, mode: str) -> JSON:
    param = f"line_items[{index}]"
    if not isinstance(item, dict):
        raise StripeFakeError(400, "Invalid object", param=param)
    if item.get("price"):
        raise StripeFakeError(
            404,
            f"No such price: '{item['price']}'",
            param=f"{param}[price]",
            code="resource_missing",
        )
    data = item.get("price_data")
    if not isinstance(data, dict):
        raise StripeFakeError(
            400,
            "You must specify either `price` or `price_data` for each line item.",
            param=param,
        )
    currency = required_param(data, "currency")
    unit_amount = int_param(
        required_param(data, "unit_amount"), f"{param}[price_data][unit_amount]"
    )
    product = data.get("product_data") or {}
    name = product.get("name") if isinstance(product, dict) else None
    if not name:
        raise StripeFakeError(
            400,
            "Missing required param: line_items[0][price_data][product_data][name].",
            param=f"{param}[price_data][product_data][name]",
            code="parameter_missing",
        )
    recurring = data.get("recurring")
    if mode == "subscription" and not recurring:
        raise StripeFakeError(
            400,
            "You must specify at least one recurring price in `subscription` mode.",
            param="line_items",
        )
    if mode == "payment" and recurring:
        raise StripeFakeError(
            400,
            "You must be in `subscription` mode to use a recurring price.",
            param=f"{param}[price_data][recurring]",
        )
    quantity = int_param(item.get("quantity", 1), f"{param}[quantity]", minimum=1)
    return {
        "price": {
            "id": new_id("price_"),
            "object": "price",
            "currency": currency,
            "unit_amount": unit_amount,
            "recurring": (
                {"interval": recurring.get("interval", "month"), "interval_count": 1}
                if isinstance(recurring, dict)
                else None
            ),
            "product": new_id("prod_", 14),
            "nickname": name,
        },
        "quantity": quantity,
        "currency": currency,
        "amount": unit_amount * quantity,
    }


def checkout_session_get(fake: StripeFake, session_id: str) -> JSON:
    return public(lookup(fake.state.sessions, session_id, "checkout.session"))


def checkout_session_complete(fake: StripeFake, session_id: str) -> JSON:
    """The customer paid on the hosted page: mark the session paid, create what it sold,
    and send the webhooks Stripe sends for it. Returns the session."""
    with fake.state.lock:
        session = lookup(fake.state.sessions, session_id, "checkout.session")
        if session["status"] != "open":
            raise StripeFakeError(
                400, "This Checkout Session is no longer active.", code="session_not_open"
            )
        session.update(status="complete", payment_status="paid", url=None)
        events: list[tuple[str, JSON]] = []
        if session["mode"] == "payment":
            session["payment_intent"] = new_id("pi_")
            charge_create_for_session(fake, session)
        else:
            if session["customer"] is None:
                session["customer"] = customer_create(fake, {})["id"]
            subscription = subscription_create_for_session(fake, session)
            invoice = invoice_paid(fake, subscription, reason="subscription_create")
            session.update(subscription=subscription["id"], invoice=invoice["id"])
            events += [
                ("customer.subscription.created", subscription),
                ("invoice.paid", invoice),
            ]
        events.insert(0, ("checkout.session.completed", public(session)))
        created = [event_create(fake, kind, obj) for kind, obj in events]
    for event in created:
        event_deliver(fake, event)
    return public(session)
