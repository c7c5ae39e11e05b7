"""The Stripe fake's account: customers, Checkout Sessions, subscriptions, invoices, meter
events and webhook events, in memory, in Stripe's shapes (of API_VERSION), with Stripe's
validation errors for the parameters aisaas sends. Restarting the fake forgets everything, as a
fresh test-mode account would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

API_VERSION = "2026-10-28.endive"
CHECKOUT_LIFETIME_SECONDS = 24 * 3600
PERIOD_SECONDS = 30 * 24 * 3600
DELIVERY_TIMEOUT_SECONDS = 10.0
ACTIVE_STATUSES = ("active", "trialing", "past_due")

JSON = dict[str, Any]


class StripeFakeError(Exception):
    """An API request Stripe would refuse; rendered as Stripe's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "message": message, "param": param, "code": code}}


def new_id(prefix: str, length: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def sign(payload: str, secret: str, timestamp: int) -> str:
    """The Stripe-Signature header for `payload`, exactly as Stripe computes it."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def decode_form(body: str) -> JSON:
    """`a[b][0][c]=1` form pairs → nested dicts, with all-numeric keys turned into lists."""
    root: JSON = {}
    for key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=False):
        head, _, rest = key.partition("[")
        parts = [head, *(rest.rstrip("]").split("][") if rest else [])]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise StripeFakeError(400, f"Invalid parameter: {key}.", param=head)
            node = child
        node[parts[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def _int_param(value: Any, param: str, *, minimum: int = 0) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise StripeFakeError(400, f"Invalid integer: {value}", param=param) from None
    if number < minimum:
        raise StripeFakeError(
            400, f"This value must be greater than or equal to {minimum}.", param=param
        )
    return number


def _required(params: JSON, name: str) -> Any:
    value = params.get(name)
    if value in (None, "", {}, []):
        raise StripeFakeError(
            400, f"Missing required param: {name}.", param=name, code="parameter_missing"
        )
    return value


def _metadata(params: JSON, name: str = "metadata") -> dict[str, str]:
    value = params.get(name) or {}
    if not isinstance(value, dict):
        raise StripeFakeError(400, "Invalid object", param=name)
    return {str(k): str(v) for k, v in value.items()}


@dataclass
class Delivery:
    """One webhook POST the fake made: which event, and what our endpoint answered."""

    event_id: str
    type: str
    status: int  # 0: no answer (connection refused, timeout)
    body: str


@dataclass
class StripeFakeState:
    """Everything the fake knows, guarded by one lock (the server is threaded)."""

    customers: dict[str, JSON] = field(default_factory=dict)
    sessions: dict[str, JSON] = field(default_factory=dict)
    subscriptions: dict[str, JSON] = field(default_factory=dict)
    invoices: dict[str, JSON] = field(default_factory=dict)
    meter_events: dict[str, JSON] = field(default_factory=dict)  # by identifier
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

    # --- customers ---------------------------------------------------------------------------

    def customer_create(self, params: JSON) -> JSON:
        customer: JSON = {
            "id": new_id("cus_", 14),
            "object": "customer",
            "created": self.now(),
            "email": params.get("email") or None,
            "name": params.get("name") or None,
            "description": params.get("description") or None,
            "metadata": _metadata(params),
            "balance": 0,
            "currency": None,
            "delinquent": False,
            "livemode": False,
            "preferred_locales": [],
            "tax_exempt": "none",
            "test_clock": None,
        }
        self.state.customers[customer["id"]] = customer
        return customer

    def customer_get(self, customer_id: str) -> JSON:
        return self._get(self.state.customers, customer_id, "customer")

    # --- checkout sessions -------------------------------------------------------------------

    def checkout_session_create(self, params: JSON) -> JSON:
        mode = _required(params, "mode")
        if mode not in ("payment", "subscription"):
            raise StripeFakeError(400, "Invalid mode: must be one of payment or subscription.")
        customer = params.get("customer")
        if customer:
            self.customer_get(customer)
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeFakeError(
                400,
                "line_items is required in payment and subscription mode.",
                param="line_items",
                code="parameter_missing",
            )
        lines = [self._line_item(item, index, mode) for index, item in enumerate(items)]
        now = self.now()
        session_id = new_id("cs_test_", 58)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": mode,
            "status": "open",
            "payment_status": "unpaid",
            "customer": customer or None,
            "client_reference_id": params.get("client_reference_id") or None,
            "metadata": _metadata(params),
            "currency": lines[0]["currency"],
            "amount_subtotal": sum(line["amount"] for line in lines),
            "amount_total": sum(line["amount"] for line in lines),
            "success_url": params.get("success_url") or None,
            "cancel_url": params.get("cancel_url") or None,
            "url": f"{self.base_url}/c/pay/{session_id}",
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
        session["_subscription_metadata"] = _metadata(subscription_data)
        self.state.sessions[session_id] = session
        return session

    def _line_item(self, item: Any, index: int, mode: str) -> JSON:
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
        currency = _required(data, "currency")
        unit_amount = _int_param(
            _required(data, "unit_amount"), f"{param}[price_data][unit_amount]"
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
        quantity = _int_param(item.get("quantity", 1), f"{param}[quantity]", minimum=1)
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

    def checkout_session_get(self, session_id: str) -> JSON:
        return self._public(self._get(self.state.sessions, session_id, "checkout.session"))

    def checkout_session_complete(self, session_id: str) -> JSON:
        """The customer paid on the hosted page: mark the session paid, create what it sold,
        and send the webhooks Stripe sends for it. Returns the session."""
        with self.state.lock:
            session = self._get(self.state.sessions, session_id, "checkout.session")
            if session["status"] != "open":
                raise StripeFakeError(
                    400, "This Checkout Session is no longer active.", code="session_not_open"
                )
            session.update(status="complete", payment_status="paid", url=None)
            events: list[tuple[str, JSON]] = []
            if session["mode"] == "payment":
                session["payment_intent"] = new_id("pi_")
            else:
                if session["customer"] is None:
                    session["customer"] = self.customer_create({})["id"]
                subscription = self._subscription_create(session)
                invoice = self._invoice_paid(subscription, reason="subscription_create")
                session.update(subscription=subscription["id"], invoice=invoice["id"])
                events += [
                    ("customer.subscription.created", subscription),
                    ("invoice.paid", invoice),
                ]
            events.insert(0, ("checkout.session.completed", self._public(session)))
            created = [self._event(kind, obj) for kind, obj in events]
        for event in created:
            self.deliver(event)
        return self._public(session)

    # --- subscriptions and invoices ----------------------------------------------------------

    def _subscription_create(self, session: JSON) -> JSON:
        now = self.now()
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
            "canceled_at": None,
            "ended_at": None,
            "latest_invoice": None,
            "start_date": now,
            "created": now,
            "livemode": False,
        }
        self.state.subscriptions[subscription["id"]] = subscription
        return subscription

    def _invoice_paid(self, subscription: JSON, *, reason: str) -> JSON:
        item = subscription["items"]["data"][0]
        amount = sum(
            i["price"]["unit_amount"] * i["quantity"] for i in subscription["items"]["data"]
        )
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
            "created": self.now(),
            "livemode": False,
        }
        subscription["latest_invoice"] = invoice["id"]
        self.state.invoices[invoice["id"]] = invoice
        return invoice

    def subscription_get(self, subscription_id: str) -> JSON:
        return self._get(self.state.subscriptions, subscription_id, "subscription")

    def subscription_renew(self, subscription_id: str) -> JSON:
        """The next billing period starts (not a Stripe API: a test clock advancing a period).
        Sends customer.subscription.updated and invoice.paid; returns the invoice."""
        with self.state.lock:
            subscription = self.subscription_get(subscription_id)
            if subscription["status"] not in ACTIVE_STATUSES:
                raise StripeFakeError(400, f"Subscription {subscription_id} is not active.")
            previous = [dict(item) for item in subscription["items"]["data"]]
            for item in subscription["items"]["data"]:
                item["current_period_start"] = item["current_period_end"]
                item["current_period_end"] += PERIOD_SECONDS
            invoice = self._invoice_paid(subscription, reason="subscription_cycle")
            created = [
                self._event(
                    "customer.subscription.updated",
                    subscription,
                    previous={"items": {"data": previous}},
                ),
                self._event("invoice.paid", invoice),
            ]
        for event in created:
            self.deliver(event)
        return invoice

    def subscription_cancel(self, subscription_id: str) -> JSON:
        with self.state.lock:
            subscription = self.subscription_get(subscription_id)
            if subscription["status"] == "canceled":
                raise StripeFakeError(
                    400,
                    f"A canceled subscription can only update its cancellation_details and "
                    f"metadata. Subscription: {subscription_id}",
                )
            now = self.now()
            subscription.update(status="canceled", canceled_at=now, ended_at=now)
            event = self._event("customer.subscription.deleted", subscription)
        self.deliver(event)
        return subscription

    # --- meter events ------------------------------------------------------------------------

    def meter_event_create(self, params: JSON) -> JSON:
        event_name = _required(params, "event_name")
        payload = params.get("payload")
        if not isinstance(payload, dict):
            raise StripeFakeError(
                400, "Missing required param: payload.", param="payload", code="parameter_missing"
            )
        customer = _required(payload, "stripe_customer_id")
        self.customer_get(customer)
        value = _required(payload, "value")
        try:
            float(value)
        except ValueError:
            raise StripeFakeError(
                400, f"Invalid value: {value!r} is not a number.", param="payload[value]"
            ) from None
        identifier = params.get("identifier") or new_id("mev_")
        if len(identifier) > 100:
            raise StripeFakeError(
                400, "identifier is longer than 100 characters.", param="identifier"
            )
        now = self.now()
        timestamp = _int_param(params.get("timestamp", now), "timestamp")
        if timestamp < now - 35 * 24 * 3600 or timestamp > now + 300:
            raise StripeFakeError(
                400,
                "Timestamp must be within the past 35 calendar days or up to 5 minutes in the future.",
                param="timestamp",
            )
        with self.state.lock:
            if identifier in self.state.meter_events:
                # Stripe enforces identifier uniqueness for at least 24 hours.
                raise StripeFakeError(
                    400,
                    f"An event with identifier '{identifier}' already exists.",
                    param="identifier",
                    code="meter_event_duplicate_identifier",
                )
            event = {
                "object": "billing.meter_event",
                "created": now,
                "event_name": event_name,
                "identifier": identifier,
                "payload": {str(k): str(v) for k, v in payload.items()},
                "timestamp": timestamp,
                "livemode": False,
            }
            self.state.meter_events[identifier] = event
        return event

    # --- events and webhooks -----------------------------------------------------------------

    def _event(self, type_: str, obj: JSON, *, previous: JSON | None = None) -> JSON:
        data: JSON = {"object": json.loads(json.dumps(self._public(obj)))}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {
            "id": new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1 if self.webhook_url else 0,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }
        self.state.events.append(event)
        return event

    def deliver(self, event: JSON) -> Delivery | None:
        """POST `event` to the webhook URL, signed as Stripe signs; record what came back."""
        if not self.webhook_url:
            return None
        payload = json.dumps(event, indent=2)
        # The URL is the operator's (--webhook-url) or a test's, never a customer's input.
        request = urllib.request.Request(  # noqa: S310
            self.webhook_url,
            data=payload.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": sign(payload, self.webhook_secret, self.now()),
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
        with self.state.lock:
            self.state.deliveries.append(delivery)
        return delivery

    # --- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _get(table: dict[str, JSON], object_id: str, kind: str) -> JSON:
        found = table.get(object_id)
        if found is None:
            raise StripeFakeError(
                404, f"No such {kind}: '{object_id}'", param="id", code="resource_missing"
            )
        return found

    @staticmethod
    def _public(obj: JSON) -> JSON:
        return {key: value for key, value in obj.items() if not key.startswith("_")}
