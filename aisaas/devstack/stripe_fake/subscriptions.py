"""The Stripe fake's subscriptions and their invoices: created by a completed subscription
Checkout, renewed (or ended, when cancelled at period end) by the fake's test clock, cancelled
at once by DELETE /v1/subscriptions/{id} or the portal, at period end by the portal.

Operations that send webhooks create their events under the state lock and deliver them after
releasing it: the delivery POSTs to our app, which may call the fake back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .webhooks import event_create, event_deliver
from .wire import JSON, StripeFakeError, lookup, new_id

if TYPE_CHECKING:
    from .account import StripeFake

PERIOD_SECONDS = 30 * 24 * 3600
ACTIVE_STATUSES = ("active", "trialing", "past_due")


def subscription_create_for_session(fake: StripeFake, session: JSON) -> JSON:
    """The subscription a completed subscription-mode Checkout Session sold."""
    now = fake.now()
    items = [
        {
            "id": new_id("si_", 14),
            "object": "subscription_item",
            "price": line["price"],
            "quantity": line["quantity"],
            "current_period_start": now,
            "current_period_end": now + PERIOD_SECONDS,
        }
        for line in session["_lines"]
    ]
    subscription_id = new_id("sub_")
    subscription = {
        "id": subscription_id,
        "object": "subscription",
        "customer": session["customer"],
        "status": "active",
        "currency": session["currency"],
        "metadata": dict(session["_subscription_metadata"]),
        "items": {
            "object": "list",
            "data": items,
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={subscription_id}",
        },
        "cancel_at_period_end": False,
        "cancel_at": None,
        "canceled_at": None,
        "ended_at": None,
        "latest_invoice": None,
        "start_date": now,
        "created": now,
        "livemode": False,
    }
    fake.state.subscriptions[subscription["id"]] = subscription
    return subscription


def invoice_paid(fake: StripeFake, subscription: JSON, *, reason: str) -> JSON:
    """A paid invoice for the subscription's current period; it becomes the latest invoice."""
    item = subscription["items"]["data"][0]
    amount = sum(i["price"]["unit_amount"] * i["quantity"] for i in subscription["items"]["data"])
    invoice = {
        "id": new_id("in_"),
        "object": "invoice",
        "customer": subscription["customer"],
        "status": "paid",
        "billing_reason": reason,
        "currency": subscription["currency"],
        "amount_due": amount,
        "amount_paid": amount,
        "amount_remaining": 0,
        "period_start": item["current_period_start"],
        "period_end": item["current_period_end"],
        "parent": {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(subscription["metadata"]),
                "subscription": subscription["id"],
            },
        },
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": new_id("il_"),
                    "object": "line_item",
                    "amount": i["price"]["unit_amount"] * i["quantity"],
                    "currency": subscription["currency"],
                    "quantity": i["quantity"],
                    "period": {
                        "start": i["current_period_start"],
                        "end": i["current_period_end"],
                    },
                    "pricing": {
                        "type": "price_details",
                        "price_details": {
                            "price": i["price"]["id"],
                            "product": i["price"]["product"],
                        },
                    },
                }
                for i in subscription["items"]["data"]
            ],
            "has_more": False,
        },
        "created": fake.now(),
        "livemode": False,
    }
    subscription["latest_invoice"] = invoice["id"]
    fake.state.invoices[invoice["id"]] = invoice
    return invoice


def subscription_get(fake: StripeFake, subscription_id: str) -> JSON:
    return lookup(fake.state.subscriptions, subscription_id, "subscription")


def subscription_renew(fake: StripeFake, subscription_id: str) -> JSON:
    """The next billing period starts (not a Stripe API: a test clock advancing a period).
    Sends customer.subscription.updated and invoice.paid; returns the invoice."""
    with fake.state.lock:
        subscription = subscription_get(fake, subscription_id)
        if subscription["status"] not in ACTIVE_STATUSES:
            raise StripeFakeError(400, f"Subscription {subscription_id} is not active.")
        if subscription["cancel_at_period_end"]:
            raise StripeFakeError(
                400, f"Subscription {subscription_id} cancels at period end: it does not renew."
            )
        previous = [dict(item) for item in subscription["items"]["data"]]
        for item in subscription["items"]["data"]:
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] += PERIOD_SECONDS
        invoice = invoice_paid(fake, subscription, reason="subscription_cycle")
        created = [
            event_create(
                fake,
                "customer.subscription.updated",
                subscription,
                previous={"items": {"data": previous}},
            ),
            event_create(fake, "invoice.paid", invoice),
        ]
    for event in created:
        event_deliver(fake, event)
    return invoice


def subscription_period_end(fake: StripeFake, subscription_id: str) -> JSON:
    """The test clock reaches the end of the current period: a subscription cancelled at
    period end ends (customer.subscription.deleted), any other renews. Returns it."""
    with fake.state.lock:
        ends = subscription_get(fake, subscription_id)["cancel_at_period_end"]
    if ends:
        return subscription_cancel(fake, subscription_id)
    subscription_renew(fake, subscription_id)
    return subscription_get(fake, subscription_id)


def subscription_set_cancel_at_period_end(
    fake: StripeFake, subscription_id: str, *, cancel: bool
) -> JSON:
    """Cancel at the end of the current period (cancel=True), or take that back, as
    POST /v1/subscriptions/{id} with cancel_at_period_end does. Sends
    customer.subscription.updated with the previous attributes; returns the subscription."""
    with fake.state.lock:
        subscription = subscription_get(fake, subscription_id)
        if subscription["status"] not in ACTIVE_STATUSES:
            raise StripeFakeError(
                400,
                f"A canceled subscription can only update its cancellation_details and "
                f"metadata. Subscription: {subscription_id}",
            )
        changed = ("cancel_at_period_end", "cancel_at", "canceled_at")
        previous = {name: subscription.get(name) for name in changed}
        end = max(item["current_period_end"] for item in subscription["items"]["data"])
        subscription.update(
            cancel_at_period_end=cancel,
            cancel_at=end if cancel else None,
            canceled_at=fake.now() if cancel else None,
        )
        event = event_create(fake, "customer.subscription.updated", subscription, previous=previous)
    event_deliver(fake, event)
    return subscription


def subscription_cancel(fake: StripeFake, subscription_id: str) -> JSON:
    with fake.state.lock:
        subscription = subscription_get(fake, subscription_id)
        if subscription["status"] == "canceled":
            raise StripeFakeError(
                400,
                f"A canceled subscription can only update its cancellation_details and "
                f"metadata. Subscription: {subscription_id}",
            )
        now = fake.now()
        subscription.update(status="canceled", canceled_at=now, ended_at=now)
        event = event_create(fake, "customer.subscription.deleted", subscription)
    event_deliver(fake, event)
    return subscription
