"""Managing a subscription: the billing page's "Manage subscription" button opens Stripe's
customer portal (the loopback fake) for the workspace's own customer, and what is done there
(cancel at period end, cancel, the period ending) comes back as signed webhooks that the
billing page then shows. Members are refused, outsiders get 404, failures are clear messages."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.test import Client

from aisaas.devstack.stripe_fake import StripeFakeServer
from apps.billing.checkout import billing_customer_get_or_create, checkout_subscription_start
from apps.billing.ledger import balance_get
from apps.billing.models import (
    BillingCustomer,
    CheckoutKind,
    LedgerEntry,
    StripeEvent,
    Subscription,
)
from apps.billing.plans import all_workspaces_grant_monthly
from apps.billing.portal import billing_portal_start
from apps.common.errors import PermissionDeniedError
from apps.workspaces.models import Membership, Role, User, Workspace
from tests.asgi_server import AsgiServer, run_committed
from tests.billing.conftest import like_new
from tests.billing.stripe_support import (
    BillingCustomerFactory,
    CheckoutSessionFactory,
    deliver,
    invoice_object,
    stripe_event,
    subscription_object,
)
from tests.conftest import host_client

pytestmark = pytest.mark.django_db

MakeWorkspace = Callable[..., Workspace]
ACME = "acme.localhost"
PERIOD_END = 1_802_592_000  # subscription_object's current_period_end
PERIOD_END_DAY = datetime.fromtimestamp(PERIOD_END, tz=UTC).strftime("%Y-%m-%d")
NO_ACCOUNT = "This workspace has no subscription or payment details to manage yet"
UNAVAILABLE = "The payment provider could not open the billing portal; try again."


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# Loopback only, never through a proxy; redirects are looked at, not followed.
BROWSER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def open_page(url: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
    """GET `url` (or POST `form` to it) as a browser would: (status, body, Location)."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with BROWSER.open(urllib.request.Request(url, data=data), timeout=30) as page:
            return page.status, page.read().decode(), ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers.get("Location", "")


def portal_sessions(fake: StripeFakeServer) -> int:
    return len(fake.state.portal_sessions)


def plan_of(workspace: Workspace) -> str:
    return Workspace.objects.get(pk=workspace.pk).plan


# --- who may open the portal -------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_an_owner_or_admin_is_sent_to_the_portal_of_the_workspaces_customer(
    stripe_fake: StripeFakeServer, acme: Workspace, owner: User, member: User, role: str
) -> None:
    # given acme has a Stripe customer, and the user is its owner or an admin
    customer = billing_customer_get_or_create(workspace=acme)
    user = owner
    if role == Role.ADMIN:
        Membership.objects.filter(workspace=acme, user=member).update(role=Role.ADMIN)
        user = member

    # when they press "Manage subscription"
    response = host_client(ACME, user).post("/billing/portal/")

    # then they are sent to the fake's portal for acme's customer, returning to acme's page
    assert response.status_code == 302
    session_id = response["Location"].removeprefix(f"{stripe_fake.url}/p/session/")
    assert session_id.startswith("bps_")
    session = stripe_fake.state.portal_sessions[session_id]
    assert session["customer"] == customer.stripe_customer_id
    assert session["return_url"] == f"{acme.url}billing/?portal=return"


def test_a_member_gets_the_same_refusal_as_for_other_billing_actions(
    stripe_fake: StripeFakeServer, acme: Workspace, member: User
) -> None:
    # given acme has a Stripe customer
    billing_customer_get_or_create(workspace=acme)
    before = portal_sessions(stripe_fake)

    # when a plain member posts to the portal button (and calls the service directly)
    page = host_client(ACME, member).post("/billing/portal/")
    with pytest.raises(PermissionDeniedError):
        billing_portal_start(workspace=acme, user=member)

    # then the billing refusal, and no portal session at Stripe
    assert page.status_code == 403
    assert "Only owners and admins of Acme can see its billing" in page.content.decode()
    assert portal_sessions(stripe_fake) == before


def test_an_outsider_gets_404_and_never_a_portal_of_acme(
    stripe_fake: StripeFakeServer, acme: Workspace, globex: Workspace, outsider: User
) -> None:
    # given acme and globex both have Stripe customers
    acme_customer = billing_customer_get_or_create(workspace=acme)
    globex_customer = billing_customer_get_or_create(workspace=globex)
    globex_owner = User.objects.get(email="owner@globex.test")
    before = portal_sessions(stripe_fake)

    # when globex's owner and a globex member try acme's portal
    on_acme = [
        host_client(ACME, user).post("/billing/portal/") for user in (globex_owner, outsider)
    ]
    with pytest.raises(PermissionDeniedError):
        billing_portal_start(workspace=acme, user=globex_owner)
    # and globex's owner opens the portal on globex's own host
    own = host_client("globex.localhost", globex_owner).post("/billing/portal/")

    # then acme's host answers 404 to both and no session was opened for them; on globex
    # the portal is globex's customer's, never acme's
    assert [response.status_code for response in on_acme] == [404, 404]
    assert portal_sessions(stripe_fake) == before + 1
    session_id = own["Location"].rsplit("/", 1)[-1]
    opened = stripe_fake.state.portal_sessions[session_id]["customer"]
    assert opened == globex_customer.stripe_customer_id != acme_customer.stripe_customer_id


def test_a_workspace_that_never_paid_is_told_there_is_nothing_to_manage(
    stripe_fake: StripeFakeServer, acme: Workspace, owner: User
) -> None:
    # given acme has no Stripe customer
    customers = len(stripe_fake.state.customers)
    page = host_client(ACME, owner).get("/billing/")

    # when its owner posts to the portal button anyway
    response = host_client(ACME, owner).post("/billing/portal/")

    # then the page says why (409, no 500), and no customer is created here or at Stripe;
    # the page did not offer the button in the first place
    assert 'data-testid="manage-subscription"' not in page.content.decode()
    assert response.status_code == 409
    assert NO_ACCOUNT in response.content.decode()
    assert not BillingCustomer.objects.filter(workspace=acme).exists()
    assert len(stripe_fake.state.customers) == customers


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("failure", ["stripe down", "customer unknown at stripe", "no key"])
def test_when_stripe_cannot_open_the_portal_the_page_says_so(
    stripe_fake: StripeFakeServer, acme: Workspace, owner: User, settings: Any, failure: str
) -> None:
    # given acme's customer row, and Stripe unreachable, not knowing that customer, or no key
    if failure == "customer unknown at stripe":
        BillingCustomerFactory.create(workspace=acme)
    else:
        billing_customer_get_or_create(workspace=acme)
    if failure == "stripe down":
        settings.STRIPE_API_BASE = f"http://127.0.0.1:{_closed_port()}"
    if failure == "no key":
        settings.STRIPE_SECRET_KEY = ""

    # when the owner presses "Manage subscription"
    response = host_client(ACME, owner).post("/billing/portal/")

    # then the billing page comes back with a plain 503 message, not a 500 or Stripe's words
    html = response.content.decode()
    assert response.status_code == 503
    if failure == "no key":
        assert "Payments are not configured on this server" in html
    else:
        assert UNAVAILABLE in html
        assert "No such customer" not in html
    assert 'data-testid="balance"' in html


def test_get_on_the_portal_button_is_405(owner: User) -> None:
    assert host_client(ACME, owner).get("/billing/portal/").status_code == 405


# --- what the page shows, from the webhooks ---------------------------------------------------


def subscribe_pro(workspace: Workspace, *, created: int) -> tuple[BillingCustomer, dict]:
    """The workspace subscribed to pro, as Stripe's events tell it: created and first invoice."""
    customer = BillingCustomerFactory.create(workspace=workspace)
    CheckoutSessionFactory.create(
        workspace=workspace, kind=CheckoutKind.SUBSCRIPTION, plan_code="pro", amount_micros=0
    )
    sub = subscription_object(customer)
    assert (
        deliver(stripe_event("customer.subscription.created", sub, created=created))
        .json()["outcome"]
        .startswith("applied")
    )
    deliver(stripe_event("invoice.paid", invoice_object(customer, sub["id"])))
    return customer, sub


def test_the_page_shows_the_plan_status_and_renewal_date(
    workspace: Workspace, stripe_fake: StripeFakeServer
) -> None:
    # given a workspace subscribed to pro
    subscribe_pro(workspace, created=int(time.time()))
    owner = Membership.objects.get(workspace=workspace, role=Role.OWNER).user

    # when its owner opens the billing page
    html = host_client(f"{workspace.slug}.localhost", owner).get("/billing/").content.decode()

    # then it names the plan, the status, when it renews, and offers the portal
    assert "Pro subscription: active" in html
    assert f"renews on {PERIOD_END_DAY}" in html
    assert "cancels on" not in html
    assert 'data-testid="manage-subscription">Manage subscription</button>' in html


def test_cancel_at_period_end_keeps_pro_until_deleted_then_free_and_replays_change_nothing(
    workspace: Workspace, stripe_fake: StripeFakeServer
) -> None:
    # given a workspace subscribed to pro
    now = int(time.time())
    _, sub = subscribe_pro(workspace, created=now)
    owner = Membership.objects.get(workspace=workspace, role=Role.OWNER).user
    client: Client = host_client(f"{workspace.slug}.localhost", owner)

    # when the owner cancels at period end in the portal (Stripe sends the update twice)
    cancelling = {**sub, "cancel_at_period_end": True, "cancel_at": PERIOD_END}
    updated = stripe_event("customer.subscription.updated", cancelling, created=now + 10)
    first, replay = deliver(updated), deliver(updated)
    pending = client.get("/billing/").content.decode()
    row = Subscription.objects.get(workspace=workspace)
    pending_state = (row.status, row.cancel_at_period_end, row.cancel_at, plan_of(workspace))
    # and when the period ends and Stripe deletes the subscription (delivered twice)
    ended = {**cancelling, "status": "canceled"}
    deleted = stripe_event("customer.subscription.deleted", ended, created=now + 20)
    gone, gone_again = deliver(deleted), deliver(deleted)
    after = client.get("/billing/").content.decode()

    # then until the period ends the plan stays pro and the page says when it cancels
    assert first.json()["outcome"] == (
        "applied: subscription active (cancels at period end), workspace plan pro"
    )
    assert replay.json()["duplicate"] is True
    assert pending_state == ("active", True, datetime.fromtimestamp(PERIOD_END, tz=UTC), "pro")
    assert f"cancels on {PERIOD_END_DAY}" in pending
    assert "renews on" not in pending
    # and once deleted the workspace is on free, the page says so, replays changed nothing
    assert gone.json()["outcome"] == "applied: subscription canceled, workspace plan free"
    assert gone_again.json()["duplicate"] is True
    assert plan_of(workspace) == "free"
    assert "Pro subscription: cancelled" in after
    assert "cancels on" not in after
    assert "renews on" not in after
    assert 'data-testid="upgrade-pro"' in after
    assert StripeEvent.objects.filter(event_id__in=[updated["id"], deleted["id"]]).count() == 2


def test_a_cancelled_subscription_gets_the_free_monthly_grant_again_once(
    workspace: Workspace, stripe_fake: StripeFakeServer
) -> None:
    # given a free workspace in March (March's credit), subscribed to pro since
    with time_machine.travel(datetime(2031, 3, 15, 12, tzinfo=UTC), tick=False):
        like_new(workspace)
    now = int(time.time())
    _, sub = subscribe_pro(workspace, created=now)
    cancelling = {**sub, "cancel_at_period_end": True, "cancel_at": PERIOD_END}
    deliver(stripe_event("customer.subscription.updated", cancelling, created=now + 10))
    april = datetime(2031, 4, 1, 0, 0, 1, tzinfo=UTC)

    # when April's grants run while it is set to cancel, then after Stripe deleted it (twice)
    with time_machine.travel(april, tick=False):
        while_cancelling = all_workspaces_grant_monthly()
    granted_while_cancelling = LedgerEntry.objects.filter(
        workspace=workspace, idempotency_key=f"plan_grant:{workspace.pk}:2031-04"
    ).exists()
    ended = {**cancelling, "status": "canceled"}
    deliver(stripe_event("customer.subscription.deleted", ended, created=now + 20))
    before = balance_get(workspace_id=workspace.pk).balance_micros
    with time_machine.travel(april, tick=False):
        all_workspaces_grant_monthly()
        all_workspaces_grant_monthly()

    # then the paid period was left to its invoice; afterwards free's $1 comes once, as for
    # any free workspace
    assert while_cancelling.subscribed >= 1
    assert granted_while_cancelling is False
    grants = LedgerEntry.objects.filter(
        workspace=workspace, idempotency_key=f"plan_grant:{workspace.pk}:2031-04"
    )
    assert [(g.delta_micros, g.metadata["plan"]) for g in grants] == [(1_000_000, "free")]
    assert balance_get(workspace_id=workspace.pk).balance_micros == before + 1_000_000


# --- end to end: page → SDK → fake portal → signed webhooks → our endpoint (daphne) -----------


def test_portal_cancel_at_period_end_then_the_period_ends_end_to_end(
    stripe_fake: StripeFakeServer,
    billing_site: AsgiServer,
    make_committed_workspace: MakeWorkspace,
) -> None:
    # given a committed workspace subscribed to pro through Checkout and the fake's Pay page
    workspace = make_committed_workspace()
    owner = run_committed(lambda: Membership.objects.get(workspace=workspace, role=Role.OWNER).user)
    events_before = len(stripe_fake.state.events)
    client = host_client(f"{workspace.slug}.localhost", owner)

    def state() -> tuple[str, str, bool]:
        sub = Subscription.objects.get(workspace=workspace)
        return Workspace.objects.get(pk=workspace.pk).plan, sub.status, sub.cancel_at_period_end

    try:
        url = run_committed(
            lambda: checkout_subscription_start(workspace=workspace, user=owner, plan_code="pro")
        )
        assert open_page(url, {})[0] == 303

        # when the owner presses "Manage subscription" and, on the portal, "Cancel at period end"
        portal_url = client.post("/billing/portal/")["Location"]
        status, portal, _ = open_page(portal_url)
        sub_id = run_committed(
            lambda: Subscription.objects.get(workspace=workspace).stripe_subscription_id
        )
        pressed = open_page(portal_url, {"subscription": sub_id, "action": "cancel_at_period_end"})
        cancelling, page_cancelling = run_committed(state), client.get("/billing/")
        # and the period ends (the fake's test clock), and Stripe redelivers every event
        open_page(portal_url, {"subscription": sub_id, "action": "end_period"})
        ended, page_ended = run_committed(state), client.get("/billing/")
        for event in list(stripe_fake.state.events[events_before:]):
            stripe_fake.fake.deliver(event)
        redelivered = run_committed(state)

        # then the portal listed the subscription and led back to the billing page
        assert status == 200
        assert f"data-subscription='{sub_id}'" in portal
        assert f"href='{workspace.url}billing/?portal=return'" in portal
        assert pressed[0] == 303
        # while cancelling the plan stayed pro and the page said when it ends
        assert cancelling == ("pro", "active", True)
        assert "cancels on" in page_cancelling.content.decode()
        # then the workspace went back to free, and redelivery changed nothing
        assert ended == ("free", "canceled", True)
        assert "Pro subscription: cancelled" in page_ended.content.decode()
        assert redelivered == ended
        sent = {event["id"] for event in stripe_fake.state.events[events_before:]}
        assert {d.status for d in stripe_fake.state.deliveries if d.event_id in sent} == {200}
        types = [event["type"] for event in stripe_fake.state.events[events_before:]]
        assert types[-2:] == ["customer.subscription.updated", "customer.subscription.deleted"]
    finally:
        ids = [event["id"] for event in stripe_fake.state.events[events_before:]]
        run_committed(lambda: StripeEvent.objects.filter(event_id__in=ids).delete())
