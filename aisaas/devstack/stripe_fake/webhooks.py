"""The Stripe fake's events and their webhook deliveries: each event is recorded on the
account, then POSTed to the webhook URL signed as Stripe signs, and what came back is kept."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .wire import API_VERSION, JSON, new_id, public, sign

if TYPE_CHECKING:
    from .account import StripeFake

DELIVERY_TIMEOUT_SECONDS = 10.0


@dataclass
class Delivery:
    """One webhook POST the fake made: which event, and what our endpoint answered."""

    event_id: str
    type: str
    status: int  # 0: no answer (connection refused, timeout)
    body: str


def event_create(fake: StripeFake, type_: str, obj: JSON, *, previous: JSON | None = None) -> JSON:
    """Record a `type_` event about `obj` (a snapshot of it, as Stripe shows it)."""
    data: JSON = {"object": json.loads(json.dumps(public(obj)))}
    if previous is not None:
        data["previous_attributes"] = previous
    event = {
        "id": new_id("evt_"),
        "object": "event",
        "api_version": API_VERSION,
        "created": fake.now(),
        "data": data,
        "livemode": False,
        "pending_webhooks": 1 if fake.webhook_url else 0,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }
    fake.state.events.append(event)
    return event


def event_deliver(fake: StripeFake, event: JSON) -> Delivery | None:
    """POST `event` to the webhook URL, signed as Stripe signs; record what came back."""
    if not fake.webhook_url:
        return None
    payload = json.dumps(event, indent=2)
    # The URL is the operator's (--webhook-url) or a test's, never a customer's input.
    request = urllib.request.Request(  # noqa: S310
        fake.webhook_url,
        data=payload.encode(),
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(payload, fake.webhook_secret, fake.now()),
        },
    )
    # Loopback only: never through a proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=DELIVERY_TIMEOUT_SECONDS) as response:
            delivery = Delivery(
                event["id"], event["type"], response.status, response.read().decode()
            )
    except urllib.error.HTTPError as exc:
        delivery = Delivery(
            event["id"], event["type"], exc.code, exc.read().decode(errors="replace")
        )
    except OSError as exc:
        delivery = Delivery(event["id"], event["type"], 0, str(exc))
    with fake.state.lock:
        fake.state.deliveries.append(delivery)
    return delivery
