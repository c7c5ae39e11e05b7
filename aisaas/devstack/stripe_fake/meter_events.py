"""The Stripe fake's billing meter events: POST /v1/billing/meter_events, with Stripe's checks
on the customer, the value, the identifier and the timestamp."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .customers import customer_get
from .wire import JSON, StripeFakeError, int_param, new_id, required_param

if TYPE_CHECKING:
    from .account import StripeFake


def meter_event_create(fake: StripeFake, params: JSON) -> JSON:
    event_name = required_param(params, "event_name")
    payload = params.get("payload")
    if not isinstance(payload, dict):
        raise StripeFakeError(
            400, "Missing required param: payload.", param="payload", code="parameter_missing"
        )
    customer = required_param(payload, "stripe_customer_id")
    customer_get(fake, customer)
    value = required_param(payload, "value")
    try:
        float(value)
    except ValueError:
        raise StripeFakeError(
            400, f"Invalid value: {value!r} is not a number.", param="payload[value]"
        ) from None
    identifier = params.get("identifier") or new_id("mev_")
    if len(identifier) > 100:
        raise StripeFakeError(400, "identifier is longer than 100 characters.", param="identifier")
    now = fake.now()
    timestamp = int_param(params.get("timestamp", now), "timestamp")
    if timestamp < now - 35 * 24 * 3600 or timestamp > now + 300:
        raise StripeFakeError(
            400,
            "Timestamp must be within the past 35 calendar days or up to 5 minutes in the future.",
            param="timestamp",
        )
    with fake.state.lock:
        if identifier in fake.state.meter_events:
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
        fake.state.meter_events[identifier] = event
    return event
