"""The loopback Stripe fake speaks Stripe's protocol as the official SDK expects it: errors,
authentication, idempotency keys, meter event identifiers and webhook signatures."""

from __future__ import annotations

import json
import urllib.request

import pytest
import stripe

from aisaas.devstack.stripe_fake import StripeFakeServer, sign
from tests.billing.stripe_support import STRIPE_KEY, WEBHOOK_SECRET


@pytest.fixture
def client(stripe_fake_server: StripeFakeServer) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stripe_fake_server.url})


def test_an_idempotency_key_replays_the_first_answer_and_refuses_other_parameters(
    client: stripe.StripeClient,
) -> None:
    # when one key is used twice with the same parameters, then with others
    first = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k-a1"})
    again = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k-a1"})
    with pytest.raises(stripe.IdempotencyError) as raised:
        client.v1.customers.create(params={"name": "Other"}, options={"idempotency_key": "k-a1"})

    # then the replay is the same customer and the misuse is Stripe's idempotency_error
    assert again.id == first.id
    assert "same parameters" in str(raised.value)


def test_errors_have_stripe_shapes(
    client: stripe.StripeClient, stripe_fake_server: StripeFakeServer
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.customers.retrieve("cus_nobody")
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient(
            "sk_test_wrong", base_addresses={"api": stripe_fake_server.url}
        ).v1.customers.retrieve("cus_nobody")
    with pytest.raises(stripe.InvalidRequestError) as mode:
        client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": "usd",
                            "unit_amount": 100,
                            "recurring": {"interval": "month"},
                            "product_data": {"name": "x"},
                        },
                    }
                ],
            }
        )

    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    assert "subscription" in str(mode.value)


def test_a_repeated_meter_event_identifier_is_refused(client: stripe.StripeClient) -> None:
    # given a customer and one meter event
    customer = client.v1.customers.create(params={"name": "Meter"})
    params = {
        "event_name": "credits",
        "payload": {"stripe_customer_id": customer.id, "value": "7"},
        "identifier": f"usage:{customer.id}",
    }
    client.v1.billing.meter_events.create(params=params)  # type: ignore[arg-type]

    # when the same identifier is sent again (under a new idempotency key)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.billing.meter_events.create(params=params)  # type: ignore[arg-type]

    # then it is refused, naming the identifier
    assert raised.value.param == "identifier"


def test_completed_sessions_send_events_signed_as_stripe_signs(
    client: stripe.StripeClient, stripe_fake_server: StripeFakeServer
) -> None:
    # given a paid top-up session, its event rendered and signed the way the fake delivers
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "success_url": "http://x.test/done",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 700,
                        "product_data": {"name": "credits"},
                    },
                }
            ],
        }
    )
    assert session.url is not None
    page = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(session.url).read()
    fake = stripe_fake_server.fake
    fake.checkout_session_complete(session.id)
    event = next(e for e in fake.state.events if e["data"]["object"]["id"] == session.id)
    body = json.dumps(event)
    header = sign(body, WEBHOOK_SECRET, fake.now())

    # when the SDK verifies it with the webhook secret
    verified = stripe.Webhook.construct_event(body, header, WEBHOOK_SECRET)

    # then it is the completed, paid session, and the hosted page offered a Pay button
    assert b"Pay" in page
    assert verified.type == "checkout.session.completed"
    assert verified.data.object.payment_status == "paid"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "complete"
