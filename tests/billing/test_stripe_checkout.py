"""Checkout through the official SDK against the loopback Stripe fake: what may be bought by
whom, and the whole path from "start" to "pay" to the signed webhook granting credit once."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from aisaas.devstack.stripe_fake import StripeFakeServer
from apps.billing.checkout import checkout_subscription_start, checkout_topup_start
from apps.billing.ledger import balance_get
from apps.billing.models import (
    BillingCustomer,
    CheckoutSession,
    LedgerEntry,
    StripeEvent,
    Subscription,
)
from apps.billing.stripe_client import stripe_client
from apps.common.errors import ApplicationError, PermissionDeniedError
from apps.workspaces.models import Membership, Role, User, Workspace
from tests.asgi_server import AsgiServer, run_committed

pytestmark = pytest.mark.django_db

MakeWorkspace = Callable[..., Workspace]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# Loopback only: never through a proxy from the environment; the 303 to success_url is not
# followed (it is the workspace's billing page, behind a login).
BROWSER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def owner_of(workspace: Workspace) -> User:
    return Membership.objects.get(workspace=workspace, role=Role.OWNER).user


def pay(url: str) -> tuple[int, str]:
    """Open the fake's hosted Checkout page and press Pay: (status, redirect location)."""
    with BROWSER.open(url, timeout=10) as page:
        assert b"id='pay'" in page.read()
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        BROWSER.open(request, timeout=30)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Location"]
    raise AssertionError("paying did not redirect")


# --- what may be bought, by whom --------------------------------------------------------------


@pytest.mark.parametrize(
    ("usd", "message"),
    [
        (-5, "positive"),
        (0, "positive"),
        ("0", "positive"),
        ("ten", "whole number of dollars"),
        ("", "whole number of dollars"),
        (None, "Enter an amount"),
        (True, "Enter an amount"),
        ("10.50", "whole dollars"),
        ("NaN", "whole number of dollars"),
        ("Infinity", "whole number of dollars"),
        (4, "between $5 and $1,000"),
        (1001, "between $5 and $1,000"),
        (10**30, "between $5 and $1,000"),
    ],
)
def test_bad_topup_amounts_are_refused_precisely_and_nothing_is_written(
    stripe_fake: StripeFakeServer, acme: Workspace, owner: User, usd: Any, message: str
) -> None:
    # given the acme owner and the fake's sessions so far
    sessions = len(stripe_fake.state.sessions)

    # when they start a top-up with a bad amount
    with pytest.raises(ApplicationError) as raised:
        checkout_topup_start(workspace=acme, user=owner, usd=usd)

    # then the message says what is wrong with the amount; no row, no session at Stripe
    assert raised.value.field == "usd"
    assert message in raised.value.message
    assert not CheckoutSession.objects.filter(workspace=acme).exists()
    assert len(stripe_fake.state.sessions) == sessions


@pytest.mark.parametrize(
    ("plan_code", "message"),
    [
        ("platinum", "There is no plan called 'platinum'."),
        ("", "There is no plan called ''."),
        ("enterprise", "arranged with our sales team"),
        ("free", "free: there is nothing to buy"),
    ],
)
def test_plans_that_cannot_be_bought_are_refused(
    stripe_fake: StripeFakeServer, acme: Workspace, owner: User, plan_code: str, message: str
) -> None:
    with pytest.raises(ApplicationError) as raised:
        checkout_subscription_start(workspace=acme, user=owner, plan_code=plan_code)

    assert raised.value.field == "plan"
    assert message in raised.value.message
    assert not CheckoutSession.objects.filter(workspace=acme).exists()


def test_subscribing_to_the_plan_already_held_is_refused(
    stripe_fake: StripeFakeServer, acme: Workspace, owner: User
) -> None:
    # given acme on pro
    Workspace.objects.filter(pk=acme.pk).update(plan="pro")
    acme.refresh_from_db()

    # when its owner tries to subscribe to pro again
    with pytest.raises(ApplicationError) as raised:
        checkout_subscription_start(workspace=acme, user=owner, plan_code="pro")

    # then they are told so
    assert raised.value.message == "This workspace is already on the Pro plan."
    assert not CheckoutSession.objects.filter(workspace=acme).exists()


@pytest.mark.parametrize("who", ["member", "outsider"])
def test_only_owners_and_admins_start_a_checkout(
    stripe_fake: StripeFakeServer, acme: Workspace, request: pytest.FixtureRequest, who: str
) -> None:
    # given acme's plain member, or a globex user who is not in acme at all
    user: User = request.getfixturevalue(who)
    sessions = len(stripe_fake.state.sessions)

    # when they try to buy credit or a plan for acme
    with pytest.raises(PermissionDeniedError):
        checkout_topup_start(workspace=acme, user=user, usd=20)
    with pytest.raises(PermissionDeniedError):
        checkout_subscription_start(workspace=acme, user=user, plan_code="pro")

    # then nothing is written here or at Stripe
    assert not CheckoutSession.objects.filter(workspace=acme).exists()
    assert not BillingCustomer.objects.filter(workspace=acme).exists()
    assert len(stripe_fake.state.sessions) == sessions


def test_an_admin_starts_a_topup_that_returns_to_the_billing_page(
    stripe_fake: StripeFakeServer, acme: Workspace, member: User
) -> None:
    # given acme's member promoted to admin
    Membership.objects.filter(workspace=acme, user=member).update(role=Role.ADMIN)

    # when they start two top-ups
    url = checkout_topup_start(workspace=acme, user=member, usd="25")
    checkout_topup_start(workspace=acme, user=member, usd=5)

    # then the URL is the fake's hosted page, one Stripe customer serves both, and our row
    # records what was sold; Stripe will send the buyer back to acme's billing page
    row = CheckoutSession.objects.get(workspace=acme, amount_micros=25_000_000)
    assert url == f"{stripe_fake.url}/c/pay/{row.stripe_session_id}"
    assert (row.kind, row.status, row.created_by_id) == ("topup", "open", member.pk)
    session = stripe_fake.state.sessions[row.stripe_session_id]
    customer = BillingCustomer.objects.get(workspace=acme)
    assert session["customer"] == customer.stripe_customer_id
    assert session["amount_total"] == 2500
    assert session["success_url"] == f"{acme.url}billing/?checkout=success"
    assert session["cancel_url"] == f"{acme.url}billing/?checkout=cancelled"
    assert CheckoutSession.objects.filter(workspace=acme).count() == 2


def test_without_stripe_configured_checkout_says_so(
    acme: Workspace, owner: User, settings: Any
) -> None:
    settings.STRIPE_SECRET_KEY = ""

    with pytest.raises(ApplicationError) as raised:
        checkout_topup_start(workspace=acme, user=owner, usd=10)

    assert raised.value.status == 503
    assert "not configured" in raised.value.message


# --- end to end: SDK → fake → pay → signed webhook → our endpoint (daphne) --------------------


def _forget_events(fake: StripeFakeServer, since: int) -> None:
    ids = [event["id"] for event in fake.state.events[since:]]
    run_committed(lambda: StripeEvent.objects.filter(event_id__in=ids).delete())


def test_topup_end_to_end_grants_the_credit_once(
    stripe_fake: StripeFakeServer,
    billing_site: AsgiServer,
    make_committed_workspace: MakeWorkspace,
) -> None:
    # given a committed workspace (daphne sees it) and its owner
    workspace = make_committed_workspace()
    owner = run_committed(lambda: owner_of(workspace))
    before = run_committed(lambda: balance_get(workspace_id=workspace.pk).balance_micros)
    events_before = len(stripe_fake.state.events)

    try:
        # when the owner starts a $20 top-up and pays on the fake's Checkout page
        url = run_committed(lambda: checkout_topup_start(workspace=workspace, user=owner, usd=20))
        status, location = pay(url)
        # and Stripe delivers the same event again later
        (completed,) = stripe_fake.state.events[events_before:]
        stripe_fake.fake.deliver(completed)

        # then the buyer is sent back to the billing page, the signed webhook reached our
        # endpoint, and 20,000 credits were granted once with $20 of revenue
        assert (status, location) == (303, f"{workspace.url}billing/?checkout=success")
        deliveries = [d for d in stripe_fake.state.deliveries if d.event_id == completed["id"]]
        assert [d.status for d in deliveries] == [200, 200]
        assert '"duplicate": true' in deliveries[1].body

        def ledger() -> tuple[list[tuple[int, int]], int, str]:
            rows = LedgerEntry.objects.filter(workspace=workspace, reason="topup")
            return (
                [(row.delta_micros, row.revenue_micros) for row in rows],
                balance_get(workspace_id=workspace.pk).balance_micros,
                CheckoutSession.objects.get(workspace=workspace).status,
            )

        assert run_committed(ledger) == (
            [(20_000_000, 20_000_000)],
            before + 20_000_000,
            "complete",
        )
    finally:
        _forget_events(stripe_fake, events_before)


def test_subscription_end_to_end_moves_to_pro_and_grants_each_invoice_once(
    stripe_fake: StripeFakeServer,
    billing_site: AsgiServer,
    make_committed_workspace: MakeWorkspace,
) -> None:
    # given a committed free workspace and its owner
    workspace = make_committed_workspace()
    owner = run_committed(lambda: owner_of(workspace))
    events_before = len(stripe_fake.state.events)

    def state() -> tuple[str, list[int], str]:
        grants = LedgerEntry.objects.filter(
            workspace=workspace, reason="plan_grant", idempotency_key__startswith="invoice:"
        )
        subscription = Subscription.objects.filter(workspace=workspace).first()
        return (
            Workspace.objects.get(pk=workspace.pk).plan,
            [grant.revenue_micros for grant in grants],
            subscription.status if subscription else "",
        )

    try:
        # when the owner subscribes to pro and pays
        url = run_committed(
            lambda: checkout_subscription_start(workspace=workspace, user=owner, plan_code="pro")
        )
        status, _ = pay(url)
        subscribed = run_committed(state)
        # and Stripe redelivers every event of that payment
        for event in list(stripe_fake.state.events[events_before:]):
            stripe_fake.fake.deliver(event)
        redelivered = run_committed(state)
        # and a month later the subscription renews, then is cancelled
        subscription_id = run_committed(
            lambda: Subscription.objects.get(workspace=workspace).stripe_subscription_id
        )
        stripe_fake.fake.subscription_renew(subscription_id)
        renewed = run_committed(state)
        stripe_client().v1.subscriptions.cancel(subscription_id)
        cancelled = run_committed(state)

        # then every delivery was accepted; pro came with one grant of $20 revenue per invoice,
        # redelivery changed nothing, and cancelling returned the workspace to free
        assert status == 303
        sent = {event["id"] for event in stripe_fake.state.events[events_before:]}
        assert {d.status for d in stripe_fake.state.deliveries if d.event_id in sent} == {200}
        assert subscribed == ("pro", [20_000_000], "active")
        assert redelivered == subscribed
        assert renewed == ("pro", [20_000_000, 20_000_000], "active")
        assert cancelled == ("free", [20_000_000, 20_000_000], "canceled")
    finally:
        _forget_events(stripe_fake, events_before)
