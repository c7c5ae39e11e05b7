"""Stripe's customer portal: where a subscribed workspace's owners and admins cancel or resume
the subscription, see its invoices and change the card. Stripe hosts it; we only open a session
for the workspace's own Stripe customer and send the browser there. What they change comes back
as customer.subscription.* webhooks (apps.billing.webhooks), never through this module."""

from __future__ import annotations

import stripe

from apps.common.errors import ApplicationError
from apps.workspaces.models import User, Workspace

from .checkout import require_billing_manager, stripe_unavailable
from .models import BillingCustomer
from .stripe_client import stripe_client

PORTAL_RETURN_QUERY = "portal=return"


class NoBillingAccountError(ApplicationError):
    status = 409
    code = "no_billing_account"


def billing_portal_start(*, workspace: Workspace, user: User) -> str:
    """Open a portal session for the workspace's Stripe customer; returns the portal URL.
    Refused for anyone but its owners and admins, and for a workspace that never paid."""
    require_billing_manager(workspace=workspace, user=user)
    customer = BillingCustomer.objects.filter(workspace=workspace).first()
    if customer is None:
        # Never create a customer here: there would be nothing in the portal to manage.
        raise NoBillingAccountError(
            "This workspace has no subscription or payment details to manage yet: "
            "upgrade to a plan or top up first."
        )
    try:
        session = stripe_client().v1.billing_portal.sessions.create(
            params={
                "customer": customer.stripe_customer_id,
                "return_url": f"{workspace.url}billing/?{PORTAL_RETURN_QUERY}",
            }
        )
    except stripe.StripeError as exc:
        raise stripe_unavailable(exc, doing="open the billing portal") from exc
    return str(session.url)
