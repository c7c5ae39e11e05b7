"""The Stripe fake's customers: POST /v1/customers and GET /v1/customers/{id}."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .wire import JSON, lookup, metadata_param, new_id

if TYPE_CHECKING:
    from .account import StripeFake


def customer_create(fake: StripeFake, params: JSON) -> JSON:
    customer: JSON = {
        "id": new_id("cus_", 14),
        "object": "customer",
        "created": fake.now(),
        "email": params.get("email") or None,
        "name": params.get("name") or None,
        "description": params.get("description") or None,
        "metadata": metadata_param(params),
        "balance": 0,
        "currency": None,
        "delinquent": False,
        "livemode": False,
        "preferred_locales": [],
        "tax_exempt": "none",
        "test_clock": None,
    }
    fake.state.customers[customer["id"]] = customer
    return customer


def customer_get(fake: StripeFake, customer_id: str) -> JSON:
    return lookup(fake.state.customers, customer_id, "customer")
