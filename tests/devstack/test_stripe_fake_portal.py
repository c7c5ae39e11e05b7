"""The Stripe fake's customer portal: POST /v1/billing_portal/sessions as the official SDK
sends it, and the hosted portal page whose buttons cancel a subscription (at period end or now)
and send webhooks signed as Stripe signs them. No Django here: the fake on its own, with a
loopback endpoint that records what it is sent."""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from aisaas.devstack.stripe_fake import StripeFakeError, StripeFakeServer

API_KEY = "sk_test_portal"
SECRET = "whsec_portal"


@dataclass
class Endpoint:
    """A webhook endpoint on loopback that keeps every verified event it receives."""

    url: str = ""
    events: list[stripe.Event] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    received = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            try:
                received.events.append(
                    stripe.Webhook.construct_event(body, self.headers["Stripe-Signature"], SECRET)
                )
            except stripe.SignatureVerificationError as exc:
                received.rejected.append(str(exc))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.url = f"http://127.0.0.1:{server.server_address[1]}/webhook"
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake(endpoint: Endpoint) -> Iterator[StripeFakeServer]:
    with StripeFakeServer(api_key=API_KEY, webhook_secret=SECRET, webhook_url=endpoint.url) as srv:
        yield srv


@pytest.fixture
def client(fake: StripeFakeServer) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": fake.url})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


BROWSER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def browse(url: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(status, body, Location) of a GET, or of a POST of `form`."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with BROWSER.open(urllib.request.Request(url, data=data), timeout=10) as page:
            return page.status, page.read().decode(), ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers.get("Location", "")


def subscribed_customer(client: stripe.StripeClient, fake: StripeFakeServer) -> tuple[str, str]:
    """A customer with an active $20/month subscription bought through Checkout."""
    customer = client.v1.customers.create(params={"name": "Portal"})
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "success_url": "http://x.test/done",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 2000,
                        "recurring": {"interval": "month"},
                        "product_data": {"name": "aisaas Pro"},
                    },
                }
            ],
        }
    )
    completed = fake.fake.checkout_session_complete(session.id)
    return customer.id, str(completed["subscription"])


def portal(client: stripe.StripeClient, customer_id: str) -> stripe.billing_portal.Session:
    return client.v1.billing_portal.sessions.create(
        params={"customer": customer_id, "return_url": "http://acme.localhost:8000/billing/"}
    )


def test_a_portal_session_has_stripes_shape_and_a_hosted_page(
    client: stripe.StripeClient, fake: StripeFakeServer
) -> None:
    # given a customer with a subscription
    customer_id, subscription_id = subscribed_customer(client, fake)

    # when a portal session is created for them and its page is opened
    session = portal(client, customer_id)
    status, page, _ = browse(session.url)

    # then it is a bps_ session whose URL is the fake's page, listing the subscription with
    # its two cancel buttons and a way back
    assert session.id.startswith("bps_")
    assert session.object == "billing_portal.session"
    assert (session.customer, session.livemode) == (customer_id, False)
    assert session.url == f"{fake.url}/p/session/{session.id}"
    assert status == 200
    assert f"data-subscription='{subscription_id}'" in page
    assert "Renews on " in page
    assert f"id='cancel_at_period_end-{subscription_id}'" in page
    assert f"id='cancel_now-{subscription_id}'" in page
    assert "<a id='return' href='http://acme.localhost:8000/billing/'>Return</a>" in page


@pytest.mark.parametrize(
    ("params", "status", "param", "code"),
    [
        ({"return_url": "http://x.test/"}, 400, "customer", "parameter_missing"),
        ({"customer": "cus_nobody", "return_url": "http://x.test/"}, 404, "id", "resource_missing"),
        ({"customer": "<known>"}, 400, "return_url", "parameter_missing"),
        ({"customer": "<known>", "return_url": "javascript:alert(1)"}, 400, "return_url", None),
    ],
)
def test_a_portal_session_needs_a_known_customer_and_a_return_url(
    client: stripe.StripeClient,
    fake: StripeFakeServer,
    params: dict[str, str],
    status: int,
    param: str,
    code: str | None,
) -> None:
    # given a known customer, and the sessions so far
    known = client.v1.customers.create(params={"name": "Known"}).id
    params = {key: known if value == "<known>" else value for key, value in params.items()}
    sessions = len(fake.state.portal_sessions)

    # when a session is asked for without one of them
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.billing_portal.sessions.create(params=params)  # type: ignore[arg-type]

    # then Stripe's error names the parameter; no session exists
    assert (raised.value.http_status, raised.value.param) == (status, param)
    if code:
        assert raised.value.code == code
    assert len(fake.state.portal_sessions) == sessions


def test_cancel_at_period_end_then_the_period_ends_sends_signed_updated_then_deleted(
    client: stripe.StripeClient, fake: StripeFakeServer, endpoint: Endpoint
) -> None:
    # given a subscribed customer on the portal page
    customer_id, subscription_id = subscribed_customer(client, fake)
    session = portal(client, customer_id)
    endpoint.events.clear()
    period_end = fake.fake.subscription_get(subscription_id)["items"]["data"][0][
        "current_period_end"
    ]

    # when they press "Cancel at period end", then the fake's test clock ends the period
    pressed = browse(
        session.url, {"subscription": subscription_id, "action": "cancel_at_period_end"}
    )
    _, page_after, _ = browse(session.url)
    with pytest.raises(StripeFakeError, match="cancels at period end"):
        fake.fake.subscription_renew(subscription_id)  # it does not renew any more
    browse(session.url, {"subscription": subscription_id, "action": "end_period"})

    # then the page came back (303) showing when it cancels; our endpoint verified an update
    # with cancel_at_period_end, then the deletion, both signed with the webhook secret
    assert pressed[0] == 303
    assert pressed[2] == f"/p/session/{session.id}"
    assert "Cancels on " in page_after
    assert endpoint.rejected == []
    assert [event.type for event in endpoint.events] == [
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ]
    updated, deleted = endpoint.events
    assert updated.data.object.cancel_at_period_end is True
    assert updated.data.object.cancel_at == period_end
    assert updated.data.object.status == "active"
    previous = updated.data.previous_attributes
    assert previous is not None
    assert previous["cancel_at_period_end"] is False
    assert deleted.data.object.status == "canceled"
    assert client.v1.subscriptions.retrieve(subscription_id).status == "canceled"


def test_resume_takes_the_cancellation_back_and_the_period_then_renews(
    client: stripe.StripeClient, fake: StripeFakeServer, endpoint: Endpoint
) -> None:
    customer_id, subscription_id = subscribed_customer(client, fake)
    session = portal(client, customer_id)
    endpoint.events.clear()

    browse(session.url, {"subscription": subscription_id, "action": "cancel_at_period_end"})
    browse(session.url, {"subscription": subscription_id, "action": "resume"})
    browse(session.url, {"subscription": subscription_id, "action": "end_period"})

    assert [event.type for event in endpoint.events] == [
        "customer.subscription.updated",
        "customer.subscription.updated",
        "customer.subscription.updated",
        "invoice.paid",
    ]
    resumed = endpoint.events[1].data.object
    assert (resumed.cancel_at_period_end, resumed.cancel_at) == (False, None)
    assert client.v1.subscriptions.retrieve(subscription_id).status == "active"


def test_cancel_now_sends_deleted_once_and_a_second_press_is_refused_on_the_page(
    client: stripe.StripeClient, fake: StripeFakeServer, endpoint: Endpoint
) -> None:
    customer_id, subscription_id = subscribed_customer(client, fake)
    session = portal(client, customer_id)
    endpoint.events.clear()

    first = browse(session.url, {"subscription": subscription_id, "action": "cancel_now"})
    second = browse(session.url, {"subscription": subscription_id, "action": "cancel_now"})
    _, page, _ = browse(session.url)

    assert first[0] == 303
    assert second[0] == 400
    assert "A canceled subscription can only update" in second[1]
    assert [event.type for event in endpoint.events] == ["customer.subscription.deleted"]
    assert f"id='cancel_now-{subscription_id}'" not in page
    assert "canceled" in page


def test_a_portal_session_cannot_touch_another_customers_subscription(
    client: stripe.StripeClient, fake: StripeFakeServer, endpoint: Endpoint
) -> None:
    # given two subscribed customers, and a portal session of the first
    first_customer, own_subscription = subscribed_customer(client, fake)
    _, other_subscription = subscribed_customer(client, fake)
    session = portal(client, first_customer)
    endpoint.events.clear()

    # when the first customer's session posts the other's subscription id, an unknown action,
    # or a session id that does not exist is opened
    status, page, _ = browse(session.url)
    stolen = browse(session.url, {"subscription": other_subscription, "action": "cancel_now"})
    unknown = browse(session.url, {"subscription": own_subscription, "action": "delete_all"})
    missing = browse(f"{fake.url}/p/session/bps_nobody")

    # then the page never listed it, all are refused, nothing changed and nothing was sent
    assert status == 200
    assert other_subscription not in page
    assert stolen[0] == missing[0] == 404
    assert unknown[0] == 400
    assert "Unknown portal action: &#x27;delete_all&#x27;." in unknown[1]
    assert client.v1.subscriptions.retrieve(other_subscription).status == "active"
    assert client.v1.subscriptions.retrieve(own_subscription).status == "active"
    assert endpoint.events == []
