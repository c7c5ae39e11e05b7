"""Helpers for the Stripe tests: the fake's credentials, Stripe-shaped events, and signing them
exactly as Stripe does (the fake's own `sign`), so the webhook matrix runs without a network."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import factory
from django.test import Client

from aisaas.devstack.stripe_fake import sign
from apps.billing.models import BillingCustomer, CheckoutKind, CheckoutSession

STRIPE_KEY = "sk_test_aisaas_suite"
WEBHOOK_SECRET = "whsec_aisaas_suite"
WEBHOOK_PATH = "/billing/stripe/webhook"


def stripe_event(type_: str, obj: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, indent=2).encode()


def signature(body: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    return sign(body.decode(), secret, int(time.time()) if timestamp is None else timestamp)


def post_webhook(body: bytes, sig: str | None) -> Any:
    """POST a delivery to the public host's webhook endpoint, as Stripe would; the test
    client's response (with `.json()`)."""
    headers = {"Stripe-Signature": sig} if sig is not None else {}
    return Client(HTTP_HOST="localhost").post(
        WEBHOOK_PATH, data=body, content_type="application/json", headers=headers
    )


def deliver(event: dict[str, Any], **options: Any) -> Any:
    body = encode(event)
    return post_webhook(body, signature(body, **options))


class BillingCustomerFactory(factory.django.DjangoModelFactory[BillingCustomer]):
    class Meta:
        model = BillingCustomer

    stripe_customer_id = factory.LazyFunction(lambda: f"cus_{uuid.uuid4().hex[:14]}")


class CheckoutSessionFactory(factory.django.DjangoModelFactory[CheckoutSession]):
    class Meta:
        model = CheckoutSession

    stripe_session_id = factory.LazyFunction(lambda: f"cs_test_{uuid.uuid4().hex}")
    kind = CheckoutKind.TOPUP
    amount_micros = 10_000_000


def session_object(
    session: CheckoutSession, customer: BillingCustomer, **fields: Any
) -> dict[str, Any]:
    """checkout.session as Stripe sends it once paid."""
    topup = session.kind == CheckoutKind.TOPUP
    return {
        "id": session.stripe_session_id,
        "object": "checkout.session",
        "mode": "payment" if topup else "subscription",
        "status": "complete",
        "payment_status": "paid",
        "customer": customer.stripe_customer_id,
        "amount_total": session.amount_micros // 10_000 if topup else 2000,
        "currency": "usd",
        "metadata": {},
        **fields,
    }


def subscription_object(
    customer: BillingCustomer, *, status: str = "active", plan_code: str = "pro", **fields: Any
) -> dict[str, Any]:
    return {
        "id": fields.pop("id", f"sub_{uuid.uuid4().hex[:24]}"),
        "object": "subscription",
        "customer": customer.stripe_customer_id,
        "status": status,
        "metadata": {"workspace_id": str(customer.workspace_id), "plan_code": plan_code},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_1",
                    "object": "subscription_item",
                    "price": {"id": "price_inline", "object": "price", "unit_amount": 2000},
                    "current_period_start": 1_800_000_000,
                    "current_period_end": 1_802_592_000,
                }
            ],
        },
        **fields,
    }


def invoice_object(
    customer: BillingCustomer, subscription_id: str, *, plan_code: str = "pro", amount: int = 2000
) -> dict[str, Any]:
    return {
        "id": f"in_{uuid.uuid4().hex[:24]}",
        "object": "invoice",
        "customer": customer.stripe_customer_id,
        "status": "paid",
        "amount_paid": amount,
        "currency": "usd",
        "period_start": 1_800_000_000,
        "period_end": 1_802_592_000,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {
                "subscription": subscription_id,
                "metadata": {"workspace_id": str(customer.workspace_id), "plan_code": plan_code},
            },
        },
        "lines": {"object": "list", "data": []},
    }


def charge_object(
    customer: BillingCustomer,
    payment_intent: str,
    *,
    amount: int,
    amount_refunded: int,
    **fields: Any,
) -> dict[str, Any]:
    """A charge as Stripe sends it in charge.refunded (`amount_refunded` is cumulative)."""
    return {
        "id": fields.pop("id", f"ch_{uuid.uuid4().hex[:24]}"),
        "object": "charge",
        "amount": amount,
        "amount_refunded": amount_refunded,
        "currency": "usd",
        "customer": customer.stripe_customer_id,
        "payment_intent": payment_intent,
        "refunded": amount_refunded == amount,
        "status": "succeeded",
        **fields,
    }
