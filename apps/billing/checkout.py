"""Stripe Checkout for top-ups and plan subscriptions.

What a session sells is recorded in our CheckoutSession row before the customer leaves for
Stripe: the webhook grants what that row says, never what an event's metadata claims.
Only the workspace's owners and admins may spend its money.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import stripe
import structlog
from django.conf import settings

from apps.common.errors import ApplicationError, PermissionDeniedError
from apps.workspaces.models import User, Workspace
from apps.workspaces.selectors import membership_get

from .ledger import MICROS_PER_USD, credits
from .models import BillingCustomer, CheckoutKind, CheckoutSession, Plan, Subscription
from .stripe_client import StripeUnavailableError, stripe_client

log = structlog.get_logger(__name__)

# Subscription statuses that keep the plan (past_due: Stripe is still retrying the payment).
ACTIVE_SUBSCRIPTION_STATUSES = frozenset({"active", "trialing", "past_due"})


def checkout_topup_start(*, workspace: Workspace, user: User, usd: Any) -> str:
    """Start a Checkout that buys `usd` whole dollars of credit; returns the Checkout URL."""
    require_billing_manager(workspace=workspace, user=user)
    dollars = _whole_dollars(usd)
    amount_micros = dollars * MICROS_PER_USD
    customer = billing_customer_get_or_create(workspace=workspace)
    label = f"{credits(amount_micros):,.0f} credits for {workspace.name}"
    session = _create_session(
        {
            "mode": "payment",
            "customer": customer.stripe_customer_id,
            "client_reference_id": str(workspace.pk),
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": dollars * 100,
                        "product_data": {"name": label},
                    },
                }
            ],
            "metadata": {"workspace_id": str(workspace.pk), "kind": CheckoutKind.TOPUP},
            **_return_urls(workspace),
        }
    )
    CheckoutSession.objects.create(
        workspace=workspace,
        stripe_session_id=session.id,
        kind=CheckoutKind.TOPUP,
        amount_micros=amount_micros,
        created_by_id=user.pk,
    )
    return str(session.url)


def checkout_subscription_start(*, workspace: Workspace, user: User, plan_code: str) -> str:
    """Start a Checkout that subscribes the workspace to `plan_code`; returns the Checkout URL."""
    require_billing_manager(workspace=workspace, user=user)
    plan = Plan.objects.filter(code=str(plan_code).strip()).first()
    if plan is None:
        raise ApplicationError(f"There is no plan called {str(plan_code)[:40]!r}.", field="plan")
    if not plan.self_serve:
        raise ApplicationError(
            f"The {plan.name} plan is arranged with our sales team, not bought online.",
            field="plan",
        )
    if plan.price_cents <= 0:
        raise ApplicationError(
            f"The {plan.name} plan is free: there is nothing to buy.", field="plan"
        )
    current = Subscription.objects.filter(
        workspace=workspace, status__in=ACTIVE_SUBSCRIPTION_STATUSES
    ).first()
    if workspace.plan == plan.code or (current is not None and current.plan_code == plan.code):
        raise ApplicationError(f"This workspace is already on the {plan.name} plan.", field="plan")
    if current is not None:
        raise ApplicationError(
            f"This workspace already has an active {current.plan_code} subscription; "
            "cancel it (Manage subscription) before subscribing to another plan.",
            field="plan",
        )
    customer = billing_customer_get_or_create(workspace=workspace)
    # A configured Stripe price wins; otherwise the plan's price, recurring monthly, inline.
    line_item: dict[str, Any] = (
        {"price": plan.stripe_price_id, "quantity": 1}
        if plan.stripe_price_id
        else {
            "quantity": 1,
            "price_data": {
                "currency": "usd",
                "unit_amount": plan.price_cents,
                "recurring": {"interval": "month"},
                "product_data": {"name": f"aisaas {plan.name}"},
            },
        }
    )
    metadata = {"workspace_id": str(workspace.pk), "plan_code": plan.code}
    session = _create_session(
        {
            "mode": "subscription",
            "customer": customer.stripe_customer_id,
            "client_reference_id": str(workspace.pk),
            "line_items": [line_item],
            "metadata": {**metadata, "kind": CheckoutKind.SUBSCRIPTION},
            # Copied onto the subscription and its invoices; the webhook checks it against
            # our CheckoutSession rows before believing it.
            "subscription_data": {"metadata": metadata},
            **_return_urls(workspace),
        }
    )
    CheckoutSession.objects.create(
        workspace=workspace,
        stripe_session_id=session.id,
        kind=CheckoutKind.SUBSCRIPTION,
        plan_code=plan.code,
        created_by_id=user.pk,
    )
    return str(session.url)


def billing_customer_get_or_create(*, workspace: Workspace) -> BillingCustomer:
    """The workspace's Stripe customer, created at Stripe on first use (once, even when two
    requests race: Stripe replays the same idempotency key, our row is unique per workspace)."""
    found = BillingCustomer.objects.filter(workspace=workspace).first()
    if found is not None:
        return found
    try:
        customer = stripe_client().v1.customers.create(
            params={
                "name": workspace.name,
                "metadata": {"workspace_id": str(workspace.pk), "slug": workspace.slug},
            },
            options={"idempotency_key": f"aisaas-customer-{workspace.pk}"},
        )
    except stripe.StripeError as exc:
        raise stripe_unavailable(exc) from exc
    row, _ = BillingCustomer.objects.get_or_create(
        workspace=workspace, defaults={"stripe_customer_id": customer.id}
    )
    return row


def require_billing_manager(*, workspace: Workspace, user: User) -> None:
    """PermissionDeniedError unless `user` is an owner or admin of `workspace`."""
    membership = membership_get(workspace=workspace, user=user)
    if membership is None or not membership.can_manage:
        raise PermissionDeniedError(
            "Only the workspace's owners and admins can manage its billing."
        )


def _whole_dollars(usd: Any) -> int:
    """A top-up amount as typed or posted → whole dollars within the configured range."""
    low, high = settings.BILLING_TOPUP_MIN_USD, settings.BILLING_TOPUP_MAX_USD
    if isinstance(usd, bool) or usd is None:
        raise ApplicationError("Enter an amount in dollars.", field="usd")
    text = str(usd).strip().removeprefix("$").strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ApplicationError(
            f"Enter the amount as a whole number of dollars, e.g. {low}.", field="usd"
        ) from None
    if not amount.is_finite():
        raise ApplicationError("Enter a whole number of dollars.", field="usd")
    if amount <= 0:
        raise ApplicationError("A top-up must be a positive amount.", field="usd")
    if amount != amount.to_integral_value():
        raise ApplicationError("Top-ups are in whole dollars (no cents).", field="usd")
    if not low <= amount <= high:
        raise ApplicationError(f"A top-up is between ${low} and ${high:,}.", field="usd")
    return int(amount)


def _return_urls(workspace: Workspace) -> dict[str, str]:
    billing = f"{workspace.url}billing/"
    return {
        "success_url": f"{billing}?checkout=success",
        "cancel_url": f"{billing}?checkout=cancelled",
    }


def _create_session(params: dict[str, Any]) -> stripe.checkout.Session:
    try:
        return stripe_client().v1.checkout.sessions.create(params=params)  # type: ignore[arg-type]
    except stripe.StripeError as exc:
        raise stripe_unavailable(exc) from exc


def stripe_unavailable(
    exc: stripe.StripeError, *, doing: str = "start a checkout"
) -> StripeUnavailableError:
    """The plain error a user sees when a Stripe request failed; the details go to the log."""
    # Stripe's message may name our configuration; the user gets a plain one, the log the rest.
    log.error(
        "stripe_request_failed",
        error=type(exc).__name__,
        message=str(exc.user_message or exc),
        http_status=exc.http_status,
    )
    return StripeUnavailableError(f"The payment provider could not {doing}; try again.")
