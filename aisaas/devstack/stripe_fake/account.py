"""The Stripe fake's account: customers, Checkout Sessions, subscriptions, invoices, charges
and refunds, meter events, customer portal sessions and webhook events, in memory, in Stripe's shapes (of
API_VERSION), with Stripe's validation errors for the parameters aisaas sends. Restarting the fake forgets everything, as a
fresh test-mode account would.

This module holds the state and the account's operations; each resource family is plain
functions over the account in its own module (customers, checkout, subscriptions, refunds,
meter_events, portal), events and their deliveries are in webhooks, the wire format in wire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import checkout, customers, meter_events, portal, refunds, subscriptions
from .webhooks import Delivery, event_deliver
from .wire import JSON


@dataclass
class StripeFakeState:
    """Everything the fake knows, guarded by one lock (the server is threaded)."""

    customers: dict[str, JSON] = field(default_factory=dict)
    sessions: dict[str, JSON] = field(default_factory=dict)
    subscriptions: dict[str, JSON] = field(default_factory=dict)
    invoices: dict[str, JSON] = field(default_factory=dict)
    charges: dict[str, JSON] = field(default_factory=dict)
    refunds: dict[str, JSON] = field(default_factory=dict)
    meter_events: dict[str, JSON] = field(default_factory=dict)  # by identifier
    portal_sessions: dict[str, JSON] = field(default_factory=dict)
    events: list[JSON] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    # (api key, idempotency key) → (request fingerprint, status, body)
    idempotency: dict[tuple[str, str], tuple[str, int, JSON]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)


class StripeFake:
    """The fake Stripe account: API operations on `state`, checkout completion, webhooks."""

    def __init__(
        self,
        *,
        api_key: str,
        webhook_secret: str,
        webhook_url: str = "",
        clock: Callable[[], float] = time.time,
    ):
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.webhook_url = webhook_url
        self.base_url = ""  # set by the server once it has a port
        self.state = StripeFakeState()
        self._clock = clock

    def now(self) -> int:
        return int(self._clock())

    def customer_create(self, params: JSON) -> JSON:
        return customers.customer_create(self, params)

    def customer_get(self, customer_id: str) -> JSON:
        return customers.customer_get(self, customer_id)

    def checkout_session_create(self, params: JSON) -> JSON:
        return checkout.checkout_session_create(self, params)

    def checkout_session_get(self, session_id: str) -> JSON:
        return checkout.checkout_session_get(self, session_id)

    def checkout_session_complete(self, session_id: str) -> JSON:
        return checkout.checkout_session_complete(self, session_id)

    def subscription_get(self, subscription_id: str) -> JSON:
        return subscriptions.subscription_get(self, subscription_id)

    def subscription_renew(self, subscription_id: str) -> JSON:
        return subscriptions.subscription_renew(self, subscription_id)

    def subscription_cancel(self, subscription_id: str) -> JSON:
        return subscriptions.subscription_cancel(self, subscription_id)

    def subscription_period_end(self, subscription_id: str) -> JSON:
        return subscriptions.subscription_period_end(self, subscription_id)

    def portal_session_create(self, params: JSON) -> JSON:
        return portal.portal_session_create(self, params)

    def meter_event_create(self, params: JSON) -> JSON:
        return meter_events.meter_event_create(self, params)

    def refund_create(self, params: JSON) -> JSON:
        return refunds.refund_create(self, params)

    def deliver(self, event: JSON) -> Delivery | None:
        """POST `event` to the webhook URL, signed as Stripe signs; record what came back."""
        return event_deliver(self, event)
