"""The Stripe fake's customer portal: POST /v1/billing_portal/sessions opens a session for a
customer, and its hosted page (/p/session/{id}) lists that customer's subscriptions with the
actions Stripe's portal offers: cancel at period end (or take it back), cancel now. Each sends
the webhooks Stripe sends for it. A test-clock button ends the current period, so a cancelled
subscription can be seen ending without waiting a month.

A session only ever acts on its own customer's subscriptions: any other id is Stripe's 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from .customers import customer_get
from .subscriptions import (
    subscription_cancel,
    subscription_period_end,
    subscription_set_cancel_at_period_end,
)
from .wire import JSON, StripeFakeError, lookup, new_id, required_param

if TYPE_CHECKING:
    from .account import StripeFake

PORTAL_PATH = "/p/session/"


def portal_session_create(fake: StripeFake, params: JSON) -> JSON:
    customer_id = required_param(params, "customer")
    customer_get(fake, customer_id)
    return_url = params.get("return_url")
    if not return_url:
        # The fake has no portal configuration with a default return URL.
        raise StripeFakeError(
            400,
            "You must provide a return_url, or set a default return URL in your customer "
            "portal configuration.",
            param="return_url",
            code="parameter_missing",
        )
    if urlsplit(str(return_url)).scheme not in ("http", "https"):
        raise StripeFakeError(400, "Not a valid URL", param="return_url", code="url_invalid")
    session_id = new_id("bps_")
    session: JSON = {
        "id": session_id,
        "object": "billing_portal.session",
        "configuration": "bpc_fake_default",
        "created": fake.now(),
        "customer": customer_id,
        "customer_account": None,
        "flow": None,
        "livemode": False,
        "locale": None,
        "on_behalf_of": None,
        "return_url": return_url,
        "url": f"{fake.base_url}{PORTAL_PATH}{session_id}",
    }
    fake.state.portal_sessions[session_id] = session
    return session


def portal_session_get(fake: StripeFake, session_id: str) -> JSON:
    return lookup(fake.state.portal_sessions, session_id, "billing_portal.session")


def portal_subscriptions(fake: StripeFake, session: JSON) -> list[JSON]:
    """The session's customer's subscriptions, oldest first."""
    with fake.state.lock:
        found = [
            sub
            for sub in fake.state.subscriptions.values()
            if sub["customer"] == session["customer"]
        ]
    return sorted(found, key=lambda sub: sub["created"])


def portal_act(fake: StripeFake, session_id: str, form_body: str) -> JSON:
    """A button pressed on the hosted page (`subscription`, `action` form fields): do what it
    says to one of the session's customer's subscriptions; returns the session."""
    form = {key: values[0] for key, values in parse_qs(form_body).items()}
    with fake.state.lock:
        session = portal_session_get(fake, session_id)
        subscription_id = form.get("subscription", "")
        subscription = fake.state.subscriptions.get(subscription_id)
        if subscription is None or subscription["customer"] != session["customer"]:
            raise StripeFakeError(
                404, f"No such subscription: '{subscription_id}'", code="resource_missing"
            )
    action = form.get("action", "")
    # Outside the lock: each of these delivers a webhook to our app, which may call back.
    if action == "cancel_at_period_end":
        subscription_set_cancel_at_period_end(fake, subscription_id, cancel=True)
    elif action == "resume":
        subscription_set_cancel_at_period_end(fake, subscription_id, cancel=False)
    elif action == "cancel_now":
        subscription_cancel(fake, subscription_id)
    elif action == "end_period":
        subscription_period_end(fake, subscription_id)
    else:
        raise StripeFakeError(400, f"Unknown portal action: {action[:40]!r}.", param="action")
    return session
