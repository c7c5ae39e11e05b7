"""Refunds of top-ups (charge.refunded): the credit and the revenue are taken back exactly once,
whatever the order, repetition or concurrency of Stripe's events; a spent top-up leaves a debt;
charges we did not sell as top-ups change nothing; the fake's POST /v1/refunds; finance."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import stripe
from django.db import connections
from django.utils import timezone
from django_tenants.utils import schema_context

from aisaas.devstack.stripe_fake import StripeFakeServer
from apps.agents.chat.services import conversation_create
from apps.billing.checkout import checkout_topup_start
from apps.billing.finance import finance_overview, ledger_export_rows
from apps.billing.ledger import balance_get, ledger_post
from apps.billing.models import (
    BillingCustomer,
    CheckoutKind,
    CheckoutSession,
    LedgerEntry,
    StripeEvent,
)
from apps.billing.stripe_client import stripe_client
from apps.workspaces.models import Workspace
from tests.asgi_server import AsgiServer, run_committed
from tests.billing.stripe_support import (
    STRIPE_KEY,
    BillingCustomerFactory,
    CheckoutSessionFactory,
    charge_object,
    deliver,
    encode,
    post_webhook,
    session_object,
    signature,
    stripe_event,
)
from tests.billing.test_stripe_checkout import owner_of, pay
from tests.conftest import host_client

pytestmark = pytest.mark.django_db

MakeWorkspace = Callable[..., Workspace]
USD = 1_000_000


@pytest.fixture(autouse=True)
def _secrets(stripe_fake: object) -> None:
    """Webhook secret (and API settings) of the session's fake."""


def paid_topup(workspace: Workspace, *, usd: int = 10) -> tuple[BillingCustomer, CheckoutSession]:
    """A $`usd` top-up we sold, paid and granted through checkout.session.completed."""
    customer = BillingCustomerFactory.create(workspace=workspace)
    session = CheckoutSessionFactory.create(workspace=workspace, amount_micros=usd * USD)
    obj = session_object(session, customer, payment_intent=f"pi_{uuid.uuid4().hex[:24]}")
    assert deliver(stripe_event("checkout.session.completed", obj)).status_code == 200
    session.refresh_from_db()
    return customer, session


def refunded(
    customer: BillingCustomer, session: CheckoutSession, cents: int, **fields: Any
) -> dict[str, Any]:
    """charge.refunded for the session's charge, `cents` refunded so far in all."""
    amount = session.amount_micros // 10_000
    charge = charge_object(
        customer,
        session.stripe_payment_intent_id,
        amount=amount,
        amount_refunded=cents,
        **fields,
    )
    return stripe_event("charge.refunded", charge)


def refunds(workspace: Workspace) -> list[tuple[int, int]]:
    """(delta, revenue) of the workspace's refund entries, oldest first."""
    rows = LedgerEntry.objects.filter(workspace=workspace, reason="refund").order_by("id")
    return [(row.delta_micros, row.revenue_micros) for row in rows]


def balance(workspace: Workspace) -> int:
    return balance_get(workspace_id=workspace.pk).balance_micros


# --- the payment intent is kept ---------------------------------------------------------------


def test_a_completed_topup_keeps_its_payment_intent_and_a_replay_does_not_change_it(
    workspace: Workspace,
) -> None:
    # given a paid top-up
    customer, session = paid_topup(workspace)
    first = session.stripe_payment_intent_id

    # when another completion event names another payment intent
    obj = session_object(session, customer, payment_intent="pi_other")
    deliver(stripe_event("checkout.session.completed", obj))

    # then the session keeps the first one
    session.refresh_from_db()
    assert first.startswith("pi_")
    assert (session.status, session.stripe_payment_intent_id) == ("complete", first)


# --- refunds ---------------------------------------------------------------------------------


def test_a_full_refund_takes_the_credit_and_the_revenue_back_once(
    workspace: Workspace,
) -> None:
    # given a $10 top-up granted
    customer, session = paid_topup(workspace)
    before = balance(workspace)

    # when the Dashboard refunds all of it (and Stripe sends a second event for the same state)
    event = refunded(customer, session, 1000)
    response = deliver(event)
    again = deliver({**event, "id": f"evt_{uuid.uuid4().hex[:24]}"})

    # then one refund entry takes back 10,000 credits and $10 of revenue
    assert response.status_code == 200
    assert response.json()["outcome"] == "applied: refund of 10,000 credits"
    assert again.json()["outcome"] == "ignored: refund already applied"
    assert refunds(workspace) == [(-10 * USD, -10 * USD)]
    assert balance(workspace) == before - 10 * USD
    entry = LedgerEntry.objects.get(workspace=workspace, reason="refund")
    charge_id = event["data"]["object"]["id"]
    assert entry.idempotency_key == f"refund:{charge_id}:1000"
    assert entry.metadata["stripe_session_id"] == session.stripe_session_id


def test_two_partial_refunds_take_back_each_part_once(workspace: Workspace) -> None:
    # given a $10 top-up granted
    customer, session = paid_topup(workspace)
    before = balance(workspace)
    charge_id = f"ch_{uuid.uuid4().hex[:24]}"

    # when $3 is refunded, then $4 more (cumulative $7)
    first = deliver(refunded(customer, session, 300, id=charge_id))
    second = deliver(refunded(customer, session, 700, id=charge_id))

    # then two entries take back $3 and $4
    assert first.json()["outcome"] == "applied: refund of 3,000 credits"
    assert second.json()["outcome"] == "applied: refund of 4,000 credits"
    assert refunds(workspace) == [(-3 * USD, -3 * USD), (-4 * USD, -4 * USD)]
    assert balance(workspace) == before - 7 * USD


def test_a_refund_event_replayed_ten_times_is_applied_once(workspace: Workspace) -> None:
    customer, session = paid_topup(workspace)
    before = balance(workspace)
    event = refunded(customer, session, 500)

    responses = [deliver(event) for _ in range(10)]

    assert [r.status_code for r in responses] == [200] * 10
    assert [r.json()["duplicate"] for r in responses] == [False] + [True] * 9
    assert refunds(workspace) == [(-5 * USD, -5 * USD)]
    assert balance(workspace) == before - 5 * USD


def test_concurrent_refund_deliveries_apply_once(make_committed_workspace: MakeWorkspace) -> None:
    # given a committed workspace with a granted $10 top-up, and ten refund events for the same
    # charge state: one event delivered five times, five distinct events of the same state
    workspace = make_committed_workspace()
    customer, session = run_committed(lambda: paid_topup(workspace))
    before = run_committed(lambda: balance(workspace))
    charge_id = f"ch_{uuid.uuid4().hex[:24]}"
    same = refunded(customer, session, 1000, id=charge_id)
    events = [same] * 5 + [refunded(customer, session, 1000, id=charge_id) for _ in range(5)]
    bodies = [encode(event) for event in events]
    barrier = threading.Barrier(len(bodies))

    def post(body: bytes) -> int:
        try:
            barrier.wait()
            return int(post_webhook(body, signature(body)).status_code)
        finally:
            connections.close_all()

    # when they all arrive at once, each on its own connection and transaction
    try:
        with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
            statuses = list(pool.map(post, bodies))

        # then every delivery is a 200 and the credit moved back once
        assert statuses == [200] * len(bodies)
        assert run_committed(lambda: refunds(workspace)) == [(-10 * USD, -10 * USD)]
        assert run_committed(lambda: balance(workspace)) == before - 10 * USD
    finally:
        ids = {event["id"] for event in events}
        run_committed(lambda: StripeEvent.objects.filter(event_id__in=ids).delete())


def test_refund_events_out_of_order_never_take_back_twice(workspace: Workspace) -> None:
    # given a $10 top-up refunded $3, then $2 more: Stripe delivers the newer event first
    customer, session = paid_topup(workspace)
    before = balance(workspace)
    charge_id = f"ch_{uuid.uuid4().hex[:24]}"

    # when cumulative $5 arrives, then the older cumulative $3
    newer = deliver(refunded(customer, session, 500, id=charge_id))
    older = deliver(refunded(customer, session, 300, id=charge_id))

    # then $5 was taken back once and the late event changed nothing
    assert newer.json()["outcome"] == "applied: refund of 5,000 credits"
    assert older.status_code == 200
    assert older.json()["outcome"] == "ignored: refund already applied"
    assert refunds(workspace) == [(-5 * USD, -5 * USD)]
    assert balance(workspace) == before - 5 * USD


def test_a_refund_never_takes_back_more_than_the_topup(workspace: Workspace) -> None:
    # given a $10 top-up, and events claiming more than that was refunded, on two charges
    customer, session = paid_topup(workspace)
    before = balance(workspace)

    # when they arrive
    deliver(refunded(customer, session, 10**9))
    other_charge = deliver(refunded(customer, session, 400))

    # then only the top-up's $10 was taken back
    assert other_charge.json()["outcome"] == "ignored: refund already applied"
    assert refunds(workspace) == [(-10 * USD, -10 * USD)]
    assert balance(workspace) == before - 10 * USD


def test_refunding_a_spent_topup_leaves_a_debt_and_the_paywall(
    workspace: Workspace,
) -> None:
    # given a workspace that bought $10 of credit and spent every credit it had
    customer, session = paid_topup(workspace)
    ledger_post(
        workspace_id=workspace.pk,
        delta_micros=-balance(workspace),
        reason="feature.chat",
        idempotency_key=f"spent:{uuid.uuid4().hex}",
    )

    # when the top-up is refunded in full
    response = deliver(refunded(customer, session, 1000))

    # then the balance is a $10 debt, and its owner's chat shows the paywall
    assert response.json()["outcome"] == "applied: refund of 10,000 credits"
    assert balance(workspace) == -10 * USD
    owner = owner_of(workspace)
    with schema_context(workspace.schema_name):
        conversation = conversation_create(user=owner)
    page = host_client(f"{workspace.slug}.localhost", owner).get(f"/chat/c/{conversation.pk}/")
    html = page.content.decode()
    assert 'data-testid="credits-panel"' in html
    assert 'data-testid="composer"' not in html


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("unknown payment intent", "not a top-up we sold"),
        ("subscription invoice", "not a top-up we sold"),
        ("open top-up session", "not a top-up we sold"),
        ("unknown customer", "unknown customer"),
        ("no payment intent", "a charge without a valid id or payment intent"),
        ("nothing refunded", "nothing refunded"),
        ("another currency", "a refund in eur, not usd"),
    ],
)
def test_charges_that_are_not_our_topups_are_stored_as_ignored(
    workspace: Workspace, case: str, why: str
) -> None:
    # given a workspace with a granted top-up and a subscription checkout
    customer, session = paid_topup(workspace)
    before = balance(workspace)
    event = refunded(customer, session, 1000)
    charge = event["data"]["object"]
    if case == "unknown payment intent":
        charge["payment_intent"] = "pi_unknown"
    elif case == "subscription invoice":
        # A subscription's invoice is paid by a payment intent no Checkout of ours recorded.
        CheckoutSessionFactory.create(
            workspace=workspace, kind=CheckoutKind.SUBSCRIPTION, plan_code="pro", status="complete"
        )
        charge["payment_intent"] = f"pi_{uuid.uuid4().hex[:24]}"
    elif case == "open top-up session":
        CheckoutSession.objects.filter(pk=session.pk).update(status="open")
    elif case == "unknown customer":
        charge["customer"] = "cus_nobody"
    elif case == "no payment intent":
        charge["payment_intent"] = None
    elif case == "nothing refunded":
        charge["amount_refunded"] = 0
    else:
        charge["currency"] = "eur"

    # when charge.refunded arrives
    response = deliver(event)

    # then it is answered 200 and stored with why; nothing is posted
    assert response.status_code == 200
    assert response.json()["outcome"].startswith(f"ignored: {why}")
    assert StripeEvent.objects.get(event_id=event["id"]).outcome.startswith(f"ignored: {why}")
    assert refunds(workspace) == []
    assert balance(workspace) == before


def test_a_refund_touches_only_its_own_workspace(
    workspace: Workspace, other_workspace: Workspace
) -> None:
    # given two workspaces with a granted top-up each
    outsider = other_workspace
    customer, session = paid_topup(workspace)
    outsider_customer, _ = paid_topup(outsider)
    outsider_before = balance(outsider)

    # when the outsider's customer names the other workspace's payment intent, then the
    # workspace's own refund arrives
    stolen = deliver(refunded(outsider_customer, session, 1000))
    own = deliver(refunded(customer, session, 1000))

    # then the outsider's event was ignored; only the workspace's own refund posted, and the
    # outsider's balance is untouched
    assert stolen.json()["outcome"].startswith("ignored: not a top-up we sold")
    assert own.json()["outcome"] == "applied: refund of 10,000 credits"
    assert refunds(outsider) == []
    assert balance(outsider) == outsider_before
    assert refunds(workspace) == [(-10 * USD, -10 * USD)]


# --- finance ---------------------------------------------------------------------------------


def test_finance_shows_net_revenue_and_a_refund_as_neither_granted_nor_consumed(
    make_workspace: MakeWorkspace,
) -> None:
    # given a $10 top-up refunded $4 this period
    workspace = make_workspace()
    customer, session = paid_topup(workspace)
    deliver(refunded(customer, session, 400))
    start, end = timezone.now() - timedelta(hours=1), timezone.now() + timedelta(hours=1)

    # when finance looks at the period and exports it
    row = next(r for r in finance_overview(start=start, end=end).rows if r.slug == workspace.slug)
    csv_rows = list(ledger_export_rows(start=start, end=end, workspace=workspace))

    # then revenue is $6 net, the refund counts as neither granted nor consumed credit, and
    # the export lists the refund with negative credit and revenue
    assert row.revenue_micros == 6 * USD
    grants = LedgerEntry.objects.filter(workspace=workspace, reason__in=["plan_grant", "topup"])
    assert row.granted_micros == sum(entry.delta_micros for entry in grants)
    assert row.consumed_micros == 0
    assert row.balance_micros == balance(workspace)
    (refund,) = [r for r in csv_rows[1:] if r[3] == "refund"]
    assert (refund[4], str(refund[5]), refund[7]) == (-4 * USD, "-4000", -4 * USD)


def test_a_period_whose_refunds_exceed_its_revenue_has_no_ratio_and_is_flagged(
    make_workspace: MakeWorkspace,
) -> None:
    # given a workspace whose only money this period is a $4 refund, with $1 of provider cost
    workspace = make_workspace()
    start = timezone.now() - timedelta(seconds=1)
    ledger_post(
        workspace_id=workspace.pk,
        delta_micros=-4 * USD,
        reason="refund",
        idempotency_key=f"refund:ch_test:{uuid.uuid4().hex}",
        revenue_micros=-4 * USD,
    )
    ledger_post(
        workspace_id=workspace.pk,
        delta_micros=-1 * USD,
        reason="feature.chat",
        idempotency_key=f"chat:{uuid.uuid4().hex}",
    )

    # when finance looks at the period
    overview = finance_overview(start=start, end=timezone.now() + timedelta(hours=1))
    row = next(r for r in overview.rows if r.slug == workspace.slug)

    # then revenue is negative, consumed is only the model call, and no cost-to-revenue ratio
    # hides the cost: it is flagged as without revenue
    assert (row.revenue_micros, row.consumed_micros, row.cost_micros) == (-4 * USD, USD, USD)
    assert row.ratio is None
    assert row.flag == "no revenue"


# --- the fake's POST /v1/refunds ---------------------------------------------------------------


@pytest.fixture
def client(stripe_fake_server: StripeFakeServer) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stripe_fake_server.url})


def fake_paid_topup(fake: StripeFakeServer, client: stripe.StripeClient, cents: int) -> str:
    """A payment-mode session paid at the fake (no webhook URL in these tests): its PaymentIntent."""
    customer = client.v1.customers.create()
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer": customer.id,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": cents,
                        "product_data": {"name": "credits"},
                    },
                }
            ],
        }
    )
    return str(fake.fake.checkout_session_complete(session.id)["payment_intent"])


def test_the_fake_refunds_in_parts_and_sends_the_cumulative_amount(
    stripe_fake: StripeFakeServer, client: stripe.StripeClient
) -> None:
    # given a $10 payment at the fake
    payment_intent = fake_paid_topup(stripe_fake, client, 1000)
    events_before = len(stripe_fake.state.events)

    # when $3 is refunded by payment intent, then the rest by charge
    first = client.v1.refunds.create(params={"payment_intent": payment_intent, "amount": 300})
    rest = client.v1.refunds.create(params={"charge": str(first.charge)})

    # then the refunds are Stripe's objects and each sent charge.refunded with the cumulative
    # amount refunded
    assert (first.object, first.amount, first.status) == ("refund", 300, "succeeded")
    assert (rest.amount, rest.payment_intent) == (700, payment_intent)
    sent = stripe_fake.state.events[events_before:]
    assert [event["type"] for event in sent] == ["charge.refunded"] * 2
    charges = [event["data"]["object"] for event in sent]
    assert [(c["amount_refunded"], c["refunded"]) for c in charges] == [(300, False), (1000, True)]
    assert {c["payment_intent"] for c in charges} == {payment_intent}
    assert sent[1]["data"]["previous_attributes"] == {"amount_refunded": 300, "refunded": False}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "One of the following params should be provided"),
        ({"payment_intent": "pi_unknown"}, "No such payment_intent: 'pi_unknown'"),
        ({"charge": "ch_unknown"}, "No such charge: 'ch_unknown'"),
        ({"charge": "CHARGE", "payment_intent": "PI"}, "only specify one of these"),
        ({"payment_intent": "PI", "amount": 0}, "greater than or equal to 1"),
        ({"payment_intent": "PI", "amount": "ten"}, "Invalid integer: ten"),
        ({"payment_intent": "PI", "amount": 1001}, "greater than unrefunded amount"),
        ({"payment_intent": "PI", "reason": "bored"}, "Invalid reason"),
    ],
)
def test_the_fake_refuses_bad_refunds_as_stripe_does(
    stripe_fake: StripeFakeServer,
    client: stripe.StripeClient,
    params: dict[str, Any],
    message: str,
) -> None:
    # given a $10 payment at the fake
    payment_intent = fake_paid_topup(stripe_fake, client, 1000)
    charge = next(
        c for c in stripe_fake.state.charges.values() if c["payment_intent"] == payment_intent
    )
    names = {"PI": payment_intent, "CHARGE": charge["id"]}
    params = {key: names.get(value, value) for key, value in params.items()}
    events_before = len(stripe_fake.state.events)

    # when a bad refund is asked for
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create(params=params)  # type: ignore[arg-type]  # bad on purpose

    # then Stripe's error says why, and nothing was refunded or sent
    assert message in str(raised.value)
    assert charge["amount_refunded"] == 0
    assert len(stripe_fake.state.events) == events_before


def test_the_fake_refuses_refunding_a_refunded_charge(
    stripe_fake: StripeFakeServer, client: stripe.StripeClient
) -> None:
    payment_intent = fake_paid_topup(stripe_fake, client, 500)
    client.v1.refunds.create(params={"payment_intent": payment_intent})

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create(params={"payment_intent": payment_intent, "amount": 1})

    assert "has already been refunded" in str(raised.value)
    assert raised.value.code == "charge_already_refunded"


# --- end to end: SDK → fake → signed charge.refunded → our endpoint (daphne) → ledger -----------


def test_a_refund_through_the_sdk_takes_the_topup_back_end_to_end(
    stripe_fake: StripeFakeServer,
    billing_site: AsgiServer,
    make_committed_workspace: MakeWorkspace,
) -> None:
    # given a committed workspace whose owner bought $20 of credit on the fake's Checkout page
    workspace = make_committed_workspace()
    owner = run_committed(lambda: owner_of(workspace))
    events_before = len(stripe_fake.state.events)
    try:
        url = run_committed(lambda: checkout_topup_start(workspace=workspace, user=owner, usd=20))
        assert pay(url)[0] == 303
        session = run_committed(lambda: CheckoutSession.objects.get(workspace=workspace))
        paid = run_committed(lambda: balance(workspace))

        # when $5 is refunded through the SDK, then the rest, and Stripe redelivers the last event
        stripe_client().v1.refunds.create(
            params={"payment_intent": session.stripe_payment_intent_id, "amount": 500}
        )
        stripe_client().v1.refunds.create(
            params={"payment_intent": session.stripe_payment_intent_id}
        )
        stripe_fake.fake.deliver(stripe_fake.state.events[-1])

        # then the payment intent was recorded at checkout, every delivery was accepted, and
        # $5 then $15 of credit and revenue were taken back, once each
        assert session.stripe_payment_intent_id.startswith("pi_")
        sent = {event["id"] for event in stripe_fake.state.events[events_before:]}
        assert {d.status for d in stripe_fake.state.deliveries if d.event_id in sent} == {200}
        assert run_committed(lambda: refunds(workspace)) == [
            (-5 * USD, -5 * USD),
            (-15 * USD, -15 * USD),
        ]
        assert run_committed(lambda: balance(workspace)) == paid - 20 * USD
    finally:
        ids = [event["id"] for event in stripe_fake.state.events[events_before:]]
        run_committed(lambda: StripeEvent.objects.filter(event_id__in=ids).delete())
