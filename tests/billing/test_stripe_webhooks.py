"""The Stripe webhook endpoint with locally signed events: verification, deduplication, order,
concurrency, and events we cannot place — credits are applied exactly once or not at all."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from apps.billing.ledger import balance_get
from apps.billing.models import (
    BillingCustomer,
    CheckoutKind,
    CheckoutSession,
    LedgerEntry,
    StripeEvent,
    Subscription,
)
from apps.workspaces.models import Workspace
from tests.asgi_server import run_committed
from tests.billing.stripe_support import (
    BillingCustomerFactory,
    CheckoutSessionFactory,
    deliver,
    encode,
    invoice_object,
    post_webhook,
    session_object,
    signature,
    stripe_event,
    subscription_object,
)

pytestmark = pytest.mark.django_db

MakeWorkspace = Callable[..., Workspace]


@pytest.fixture(autouse=True)
def _secrets(stripe_fake: object) -> None:
    """Webhook secret (and API settings) of the session's fake; no request reaches it here."""


def topup_event(workspace: Workspace, **fields: object) -> tuple[dict, CheckoutSession]:
    customer = BillingCustomerFactory.create(workspace=workspace)
    session = CheckoutSessionFactory.create(workspace=workspace, amount_micros=10_000_000)
    return stripe_event(
        "checkout.session.completed", session_object(session, customer, **fields)
    ), session


def entries(workspace: Workspace, reason: str, *, since: int = 0) -> list[LedgerEntry]:
    """The workspace's entries of `reason`, those after entry `since` only when given."""
    found = LedgerEntry.objects.filter(workspace=workspace, reason=reason, pk__gt=since)
    return list(found)


# --- verification -----------------------------------------------------------------------------


def test_a_valid_topup_event_grants_the_credit_bought_once(workspace: Workspace) -> None:
    # given a paid top-up session we started for $10
    before = balance_get(workspace_id=workspace.pk).balance_micros
    start = balance_get(workspace_id=workspace.pk).last_entry_id
    event, session = topup_event(workspace)

    # when Stripe delivers checkout.session.completed
    response = deliver(event)

    # then the credit is granted, with the money received as revenue, and the session completes
    assert response.status_code == 200
    assert response.json()["outcome"] == "applied: top-up of 10,000 credits"
    (entry,) = entries(workspace, "topup", since=start)
    assert (entry.delta_micros, entry.revenue_micros) == (10_000_000, 10_000_000)
    assert entry.idempotency_key == f"topup:{session.stripe_session_id}"
    assert balance_get(workspace_id=workspace.pk).balance_micros == before + 10_000_000
    session.refresh_from_db()
    assert session.status == "complete"
    assert StripeEvent.objects.get(event_id=event["id"]).processed_at is not None


@pytest.mark.parametrize(
    "attack",
    ["tampered body", "wrong secret", "stale timestamp", "no signature", "garbage signature"],
)
def test_a_delivery_that_fails_verification_is_refused_and_changes_nothing(
    workspace: Workspace, attack: str
) -> None:
    # given a genuine-looking top-up event for the workspace
    before = balance_get(workspace_id=workspace.pk).balance_micros
    start = balance_get(workspace_id=workspace.pk).last_entry_id
    event, _ = topup_event(workspace)
    body = encode(event)
    sig: str | None = signature(body)
    if attack == "tampered body":
        body = body.replace(b'"amount_total": 1000', b'"amount_total": 999999')
    elif attack == "wrong secret":
        sig = signature(body, secret="whsec_someone_else")
    elif attack == "stale timestamp":
        sig = signature(body, timestamp=int(time.time()) - 301)
    elif attack == "no signature":
        sig = None
    else:
        sig = "t=abc,v1=nothex"

    # when it is posted
    response = post_webhook(body, sig)

    # then 400 JSON naming a signature problem, no event stored, no credit
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_webhook"
    assert not StripeEvent.objects.filter(event_id=event["id"]).exists()
    assert entries(workspace, "topup", since=start) == []
    assert balance_get(workspace_id=workspace.pk).balance_micros == before


def test_a_timestamp_just_inside_the_tolerance_is_accepted(workspace: Workspace) -> None:
    # given an event signed 290 s ago (Stripe retries re-sign, but clocks drift)
    event, _ = topup_event(workspace)

    # when it is delivered
    response = deliver(event, timestamp=int(time.time()) - 290)

    # then it is applied
    assert response.status_code == 200
    assert response.json()["outcome"].startswith("applied")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "The body is not valid JSON."),
        (b"[1, 2]", "The body is not a Stripe event object."),
        (
            b'{"id": "evt_1", "type": "x", "created": "yesterday", "data": {"object": {}}}',
            "`created`",
        ),
        (b'{"id": "evt_1", "type": "x", "created": 1, "data": {"object": []}}', "`data.object`"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_malformed_body_with_a_valid_signature_is_a_400(body: bytes, message: str) -> None:
    # given a body signed with the right secret that is not a usable event
    sig = signature(body) if message != "not UTF-8" else "t=1,v1=00"
    stored = StripeEvent.objects.count()

    # when it is posted
    response = post_webhook(body, sig)

    # then 400 with what is wrong, and nothing stored
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert StripeEvent.objects.count() == stored


def test_get_is_refused_with_405_json() -> None:
    from django.test import Client

    response = Client(HTTP_HOST="localhost").get("/billing/stripe/webhook")

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert "POST" in response.json()["error"]["message"]


# --- duplicates and concurrency --------------------------------------------------------------


def test_an_event_replayed_ten_times_is_applied_once(workspace: Workspace) -> None:
    # given a top-up event
    before = balance_get(workspace_id=workspace.pk).balance_micros
    start = balance_get(workspace_id=workspace.pk).last_entry_id
    event, _ = topup_event(workspace)

    # when Stripe delivers it ten times (each delivery re-signed, as Stripe's retries are)
    responses = [deliver(event) for _ in range(10)]

    # then every delivery is a 200, only the first applied, the credit granted once
    assert [r.status_code for r in responses] == [200] * 10
    assert [r.json()["duplicate"] for r in responses] == [False] + [True] * 9
    assert len(entries(workspace, "topup", since=start)) == 1
    assert balance_get(workspace_id=workspace.pk).balance_micros == before + 10_000_000
    assert StripeEvent.objects.filter(event_id=event["id"]).count() == 1


def test_concurrent_duplicates_apply_once_and_never_500(
    make_committed_workspace: MakeWorkspace,
) -> None:
    # given a committed workspace with a paid top-up session (threads see committed rows only)
    workspace = make_committed_workspace()

    def prepare() -> tuple[bytes, str]:
        event, _ = topup_event(workspace)
        return encode(event), event["id"]

    body, event_id = run_committed(prepare)
    before = run_committed(lambda: balance_get(workspace_id=workspace.pk).balance_micros)
    threads = 8
    barrier = threading.Barrier(threads)

    def post() -> tuple[int, bool]:
        try:
            barrier.wait()
            response = post_webhook(body, signature(body))
            return response.status_code, response.json().get("duplicate")
        finally:
            connections.close_all()

    # when eight deliveries of the same event arrive at the same moment, each on its own
    # connection and transaction
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(lambda _: post(), range(threads)))

        # then all answer 200, exactly one applied it, and the credit moved once
        assert [status for status, _ in results] == [200] * threads
        assert sorted(duplicate for _, duplicate in results) == [False] + [True] * (threads - 1)
        after = run_committed(lambda: balance_get(workspace_id=workspace.pk).balance_micros)
        assert after == before + 10_000_000
        assert run_committed(lambda: len(entries(workspace, "topup"))) == 1
    finally:
        run_committed(lambda: StripeEvent.objects.filter(event_id=event_id).delete())


# --- subscriptions: order, plan, grants -------------------------------------------------------


def subscribed(workspace: Workspace) -> BillingCustomer:
    """A customer whose subscription Checkout for pro we started."""
    customer = BillingCustomerFactory.create(workspace=workspace)
    CheckoutSessionFactory.create(
        workspace=workspace, kind=CheckoutKind.SUBSCRIPTION, plan_code="pro", amount_micros=0
    )
    return customer


def test_subscription_events_out_of_order_keep_the_newest_state(
    workspace: Workspace,
) -> None:
    # given a pro subscription whose newest event (active) was applied
    customer = subscribed(workspace)
    sub = subscription_object(customer)
    now = int(time.time())
    assert (
        deliver(stripe_event("customer.subscription.updated", sub, created=now)).status_code == 200
    )

    # when an older update (from before: past_due, then canceled) arrives late
    older = {**sub, "status": "canceled"}
    response = deliver(stripe_event("customer.subscription.updated", older, created=now - 60))

    # then it is stored but ignored: the subscription and the plan stay as the newest said
    assert response.status_code == 200
    assert response.json()["outcome"] == (
        "ignored: older than the subscription event already applied"
    )
    row = Subscription.objects.get(workspace=workspace)
    assert (row.status, row.plan_code, row.event_created) == ("active", "pro", now)
    assert Workspace.objects.get(pk=workspace.pk).plan == "pro"


def test_invoice_paid_grants_the_plan_once_and_cancel_returns_to_free(
    workspace: Workspace,
) -> None:
    # given a workspace subscribing to pro
    start = balance_get(workspace_id=workspace.pk).last_entry_id
    customer = subscribed(workspace)
    sub = subscription_object(customer)
    now = int(time.time())
    deliver(stripe_event("customer.subscription.created", sub, created=now))
    invoice = invoice_object(customer, sub["id"])
    before = balance_get(workspace_id=workspace.pk).balance_micros

    # when the first invoice is paid (and delivered twice), then the subscription is deleted
    first = deliver(stripe_event("invoice.paid", invoice))
    again = deliver(stripe_event("invoice.paid", invoice))  # another event, same invoice
    plan_while_subscribed = Workspace.objects.get(pk=workspace.pk).plan
    deliver(
        stripe_event(
            "customer.subscription.deleted", {**sub, "status": "canceled"}, created=now + 5
        )
    )

    # then pro's monthly credit was granted once with the invoice's amount as revenue, and the
    # plan went pro → free
    assert first.json()["outcome"] == "applied: pro grant of 20,000 credits"
    assert again.json()["outcome"] == "ignored: invoice already granted"
    (grant,) = [
        e
        for e in entries(workspace, "plan_grant", since=start)
        if e.idempotency_key.startswith("invoice:")
    ]
    assert (grant.delta_micros, grant.revenue_micros) == (20_000_000, 20_000_000)
    assert balance_get(workspace_id=workspace.pk).balance_micros == before + 20_000_000
    assert plan_while_subscribed == "pro"
    assert Workspace.objects.get(pk=workspace.pk).plan == "free"
    assert Subscription.objects.get(workspace=workspace).status == "canceled"


def test_metadata_claiming_a_plan_we_never_sold_is_not_believed(
    workspace: Workspace,
) -> None:
    # given a customer whose only subscription Checkout was for pro
    customer = subscribed(workspace)

    # when a subscription arrives whose metadata says enterprise
    sub = subscription_object(customer, plan_code="enterprise")
    response = deliver(stripe_event("customer.subscription.created", sub))
    invoice = deliver(
        stripe_event("invoice.paid", invoice_object(customer, sub["id"], plan_code="enterprise"))
    )

    # then neither the plan nor a grant follows it
    assert response.json()["outcome"] == "ignored: unknown plan"
    assert invoice.json()["outcome"] == "ignored: unknown plan"
    assert Workspace.objects.get(pk=workspace.pk).plan == "free"
    assert not Subscription.objects.filter(workspace=workspace).exists()


# --- events we cannot place -------------------------------------------------------------------


@pytest.mark.parametrize("type_", ["invoice.paid", "customer.subscription.created"])
def test_an_event_for_an_unknown_customer_is_logged_answered_200_and_not_applied(
    type_: str,
) -> None:
    # given an event for a customer we never created
    obj = {
        "id": "in_x",
        "object": "invoice",
        "customer": "cus_nobody",
        "amount_paid": 2000,
        "status": "active",
    }
    entries_before = LedgerEntry.objects.count()
    event = stripe_event(type_, obj)

    # when it is delivered
    response = deliver(event)

    # then Stripe gets its 200, the event is stored with why, and nothing else changes
    assert response.status_code == 200
    assert StripeEvent.objects.get(event_id=event["id"]).outcome == "ignored: unknown customer"
    assert LedgerEntry.objects.count() == entries_before


def test_a_completed_session_we_did_not_start_is_ignored() -> None:
    # given a session id we have no row for
    obj = {
        "id": "cs_test_unknown",
        "mode": "payment",
        "payment_status": "paid",
        "customer": "cus_x",
        "amount_total": 100_000,
    }
    event = stripe_event("checkout.session.completed", obj)

    # when it is delivered
    response = deliver(event)

    # then it is stored, answered 200, and grants nothing
    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored: unknown checkout session"
    assert not LedgerEntry.objects.filter(idempotency_key="topup:cs_test_unknown").exists()


def test_an_unpaid_completed_session_waits_for_its_payment(workspace: Workspace) -> None:
    # given a top-up session completed with a delayed payment method
    start = balance_get(workspace_id=workspace.pk).last_entry_id
    event, _ = topup_event(workspace, payment_status="unpaid")

    # when checkout.session.completed arrives, then async_payment_succeeded
    waiting = deliver(event)
    paid_object = {**event["data"]["object"], "payment_status": "paid"}
    paid = deliver(stripe_event("checkout.session.async_payment_succeeded", paid_object))

    # then the credit comes with the payment, not before
    assert waiting.json()["outcome"] == "ignored: not paid yet"
    assert paid.json()["outcome"] == "applied: top-up of 10,000 credits"
    assert len(entries(workspace, "topup", since=start)) == 1


def test_other_event_types_are_stored_and_ignored() -> None:
    event = stripe_event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"})

    response = deliver(event)

    assert response.status_code == 200
    assert json.loads(response.content)["outcome"] == "ignored: event type not used"
    assert StripeEvent.objects.get(event_id=event["id"]).type == "payment_intent.succeeded"
