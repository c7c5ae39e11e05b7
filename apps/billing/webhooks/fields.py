"""Reading a verified event's object: a signed event can still hold a shape we do not expect,
so every read has a safe default; plus the locked customer row an event is about, and the
"ignored" outcome every handler gives for events it cannot place."""

from __future__ import annotations

from typing import Any

import structlog

from ..ledger import MICROS_PER_USD
from ..models import BillingCustomer

log = structlog.get_logger(__name__)

JSON = dict[str, Any]

# Stripe amounts are in cents.
MICROS_PER_CENT = MICROS_PER_USD // 100


def str_at(obj: JSON, key: str) -> str:
    value = obj.get(key)
    if isinstance(value, dict):  # an expanded object: its id
        value = value.get("id")
    return value if isinstance(value, str) else ""


def int_at(obj: JSON, key: str) -> int:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def dict_at(obj: JSON, *path: str) -> JSON:
    for key in path:
        value = obj.get(key)
        obj = value if isinstance(value, dict) else {}
    return obj


def list_at(obj: JSON, *path: str) -> list[JSON]:
    *parents, last = path
    value = dict_at(obj, *parents).get(last)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def customer_for_update(obj: JSON) -> BillingCustomer | None:
    """Our customer row for the object's `customer`, locked: one workspace's events apply one
    at a time."""
    customer_id = str_at(obj, "customer")
    if not customer_id:
        return None
    return (
        BillingCustomer.objects.select_for_update()
        .select_related("workspace")
        .filter(stripe_customer_id=customer_id)
        .first()
    )


def ignored(event: JSON, why: str) -> str:
    log.warning("stripe_webhook.ignored", event_id=event["id"], type=event["type"], why=why)
    return f"ignored: {why}"
