"""Receiving one Stripe delivery: verify the signature, parse the event, record it once per
event id and apply it through the handler for its type, in one transaction."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import stripe
import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.common.errors import ApplicationError

from ..models import StripeEvent
from .checkout_events import checkout_completed, checkout_expired
from .fields import JSON
from .refund_events import charge_refunded
from .subscription_events import invoice_paid, subscription_changed

log = structlog.get_logger(__name__)


class WebhookRejectedError(ApplicationError):
    """Not a genuine, well-formed Stripe event: answered 400, nothing stored."""

    code = "invalid_webhook"


@dataclass(frozen=True, slots=True)
class WebhookReceipt:
    event_id: str
    type: str
    outcome: str  # "applied: …" / "ignored: …"; for a duplicate, the first delivery's
    duplicate: bool


def stripe_webhook_receive(*, payload: bytes, signature: str | None) -> WebhookReceipt:
    """Verify, record and apply one Stripe webhook delivery, exactly once per event id.
    Raises WebhookRejectedError for a bad signature or a malformed event."""
    _verify(payload, signature)
    event = _parse(payload)
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = StripeEvent.objects.create(
                    event_id=event["id"],
                    type=event["type"],
                    created=event["created"],
                    payload=event,
                )
        except IntegrityError:
            first = StripeEvent.objects.filter(event_id=event["id"]).first()
            log.info("stripe_webhook.duplicate", event_id=event["id"], type=event["type"])
            return WebhookReceipt(
                event["id"], event["type"], first.outcome if first else "", duplicate=True
            )
        handler = HANDLERS.get(event["type"])
        outcome = handler(event) if handler else "ignored: event type not used"
        record.outcome = outcome[:200]
        record.processed_at = timezone.now()
        record.save(update_fields=["outcome", "processed_at"])
    log.info("stripe_webhook.received", event_id=event["id"], type=event["type"], outcome=outcome)
    return WebhookReceipt(event["id"], event["type"], outcome, duplicate=False)


def _verify(payload: bytes, signature: str | None) -> None:
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"),
            signature,
            settings.STRIPE_WEBHOOK_SECRET,
            settings.STRIPE_WEBHOOK_TOLERANCE,
        )
    except UnicodeDecodeError:
        raise WebhookRejectedError("The body is not UTF-8 text.") from None
    except stripe.SignatureVerificationError as exc:
        log.warning("stripe_webhook.bad_signature", reason=str(exc))
        raise WebhookRejectedError(f"Signature verification failed: {exc}") from None


def _parse(payload: bytes) -> JSON:
    """The event, checked for the fields every handler relies on."""
    try:
        event = json.loads(payload)
    except ValueError:
        raise WebhookRejectedError("The body is not valid JSON.") from None
    if not isinstance(event, dict):
        raise WebhookRejectedError("The body is not a Stripe event object.")
    for name, kind in (("id", str), ("type", str), ("created", int), ("data", dict)):
        value = event.get(name)
        if not isinstance(value, kind) or isinstance(value, bool) or value in ("", {}):
            raise WebhookRejectedError(f"The event has no valid `{name}`.")
    if not isinstance(event["data"].get("object"), dict):
        raise WebhookRejectedError("The event has no `data.object`.")
    if len(event["id"]) > 255 or len(event["type"]) > 100:
        raise WebhookRejectedError("The event's `id` or `type` is too long.")
    return event


HANDLERS: dict[str, Callable[[JSON], str]] = {
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": checkout_completed,
    "checkout.session.expired": checkout_expired,
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_changed,
    "invoice.paid": invoice_paid,
    "charge.refunded": charge_refunded,
}
