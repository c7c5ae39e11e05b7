"""The Stripe fake's hosted pages as a browser sees them: Checkout (a Pay button) and the
customer portal (the customer's subscriptions and what can be done to them). Plain HTML, every
value escaped; the forms post back to the fake."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from .subscriptions import ACTIVE_STATUSES
from .wire import JSON


def page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui;max-width:32rem;margin:4rem auto}"
        "button{font-size:1.1rem;padding:.5rem 2rem}"
        "form.inline{display:inline}li{margin-bottom:1rem}</style></head>"
        f"<body>{body}</body></html>"
    )


def error_page(title: str, message: str) -> str:
    return page(title, f"<h1>{html.escape(title)}</h1><p role='alert'>{html.escape(message)}</p>")


def checkout_html(session: JSON) -> str:
    amount = f"${session['amount_total'] / 100:,.2f} {str(session['currency']).upper()}"
    what = "per month" if session["mode"] == "subscription" else "once"
    if session["status"] != "open":
        body = f"<h1>Checkout</h1><p>This Checkout Session is {html.escape(session['status'])}.</p>"
        return page("Checkout", body)
    cancel = session.get("cancel_url") or ""
    body = (
        "<h1>Stripe fake — Checkout</h1>"
        f"<p>Pay <strong>{html.escape(amount)}</strong> {what}. Test mode: no card needed.</p>"
        f"<form method='post' action='/c/pay/{html.escape(session['id'])}'>"
        "<button type='submit' id='pay'>Pay</button></form>"
        + (f"<p><a href='{html.escape(cancel)}'>Cancel</a></p>" if cancel else "")
    )
    return page("Checkout", body)


def _day(timestamp: int | None) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d") if timestamp else "—"


def _button(session_id: str, subscription_id: str, action: str, label: str) -> str:
    return (
        f"<form method='post' action='/p/session/{html.escape(session_id)}' class='inline'>"
        f"<input type='hidden' name='subscription' value='{html.escape(subscription_id)}'>"
        f"<input type='hidden' name='action' value='{action}'>"
        f"<button type='submit' id='{action}-{html.escape(subscription_id)}'>{label}</button>"
        "</form> "
    )


def _subscription_item(session_id: str, sub: JSON) -> str:
    items = sub["items"]["data"]
    price = sum(item["price"]["unit_amount"] * item["quantity"] for item in items)
    name = (items[0]["price"].get("nickname") if items else None) or "Subscription"
    period_end = max((item["current_period_end"] for item in items), default=None)
    line = (
        f"<strong>{html.escape(str(name))}</strong> — ${price / 100:,.2f} "
        f"{html.escape(str(sub['currency']).upper())} per month · "
        f"<span class='status'>{html.escape(sub['status'])}</span>"
    )
    if sub["status"] not in ACTIVE_STATUSES:
        return f"<li data-subscription='{html.escape(sub['id'])}'>{line}</li>"
    buttons = (
        f"<br>Cancels on {_day(sub.get('cancel_at'))}. "
        + _button(session_id, sub["id"], "resume", "Don't cancel")
        if sub["cancel_at_period_end"]
        else f"<br>Renews on {_day(period_end)}. "
        + _button(session_id, sub["id"], "cancel_at_period_end", "Cancel at period end")
    )
    buttons += _button(session_id, sub["id"], "cancel_now", "Cancel now")
    buttons += "<br><small>Test clock:</small> " + _button(
        session_id, sub["id"], "end_period", "End the current period now"
    )
    return f"<li data-subscription='{html.escape(sub['id'])}'>{line}{buttons}</li>"


def portal_html(session: JSON, subscriptions: list[JSON], *, error: str = "") -> str:
    rows = "".join(_subscription_item(session["id"], sub) for sub in subscriptions)
    body = (
        "<h1>Stripe fake — Billing portal</h1>"
        f"<p>Customer <code>{html.escape(session['customer'])}</code>. Test mode: no card "
        "details to update, no invoices to download.</p>"
        + (f"<p role='alert'>{html.escape(error)}</p>" if error else "")
        + (f"<ul>{rows}</ul>" if rows else "<p>No subscriptions.</p>")
        + f"<p><a id='return' href='{html.escape(session['return_url'])}'>Return</a></p>"
    )
    return page("Billing portal", body)
