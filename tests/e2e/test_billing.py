"""Billing in a real browser (Debian chromium) against daphne and the loopback Stripe fake, whose
hosted pages the browser really visits and whose signed webhooks reach the app: the owner tops
up through Checkout and sees the credit, bad amounts are refused next to the field, at zero
credit the chat shows the paywall instead of the composer (and makes no model call), an outcome
is disputed on the page, the subscription is cancelled at period end in the portal, and members
and outsiders are kept out.

The session workspace acme is committed, so what a test adds to it is taken back afterwards:
ledger rows by a compensating adjustment (the ledger is append-only), Checkout rows, the Stripe
customer, Stripe events, outcomes, conversations and call logs by deleting the test's own rows,
as the other committed-row tests do.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.template.defaultfilters import floatformat
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import Locator, Page, expect

from aisaas.devstack.stripe_fake import StripeFakeServer
from apps.agents.chat.answer import OUT_OF_CREDITS
from apps.agents.models import Conversation
from apps.billing.ledger import balance_get, credits, credits_grant, credits_take, ledger_post
from apps.billing.models import (
    BillingCustomer,
    CheckoutSession,
    LedgerEntry,
    LedgerReason,
    Outcome,
    OutcomeStatus,
    StripeEvent,
    Subscription,
)
from apps.billing.outcomes import outcome_record
from apps.traces.models import LlmCallLog
from apps.traces.rollups import rollups_rebuild
from apps.traces.services import call_records_flush
from apps.workspaces.models import Membership, Role, User, Workspace
from tests.asgi_server import AsgiServer, run_committed
from tests.billing import conftest as billing_fixtures
from tests.factories import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

# The Stripe fake and daphne pointed at it, and committed throwaway workspaces: tests/billing's
# fixtures, reused here as tests/billing/test_paywall.py reuses tests/api's.
stripe_fake_server = billing_fixtures.stripe_fake_server
billing_site = billing_fixtures.billing_site
rds = billing_fixtures.rds
make_committed_workspace = billing_fixtures.make_committed_workspace

OWNER = "owner@acme.test"
MEMBER = "member@acme.test"
GLOBEX_OWNER = "owner@globex.test"
AMOUNT = "Amount (USD)"
REASON = "Why should this not be billed?"
# Steps that wait on Stripe's pages and the webhooks they send, on a loaded 2-core machine.
STRIPE_TIMEOUT_MS = 30_000
# Page loads after a form post (login, a new conversation).
PAGE_TIMEOUT_MS = 15_000
POSITIVE = "A top-up must be a positive amount of dollars."
REQUIRED = "Enter an amount in dollars, e.g. 20."
LARGEST = "The largest top-up is $1,000."
PAID_BANNER = "Payment received — your credits appear in a few seconds."
CONVERSATION_URL = re.compile(r"/chat/c/\d+/$")
PORTAL_BANNER = (
    "Back from the billing portal — changes to the subscription show here in a few seconds."
)


@pytest.fixture
def live_server_asgi(billing_site: AsgiServer) -> AsgiServer:
    """daphne with the Stripe fake's secrets, under the name tests/e2e/conftest.py looks for
    (a failing test shows what it printed)."""
    return billing_site


def _acme() -> Workspace:
    return Workspace.objects.get(slug="acme")


def _log_in(page: Page, server: AsgiServer, email: str, path: str, workspace: str = "acme") -> None:
    page.goto(server.url(path, workspace=workspace))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page).to_have_url(server.url(path, workspace=workspace), timeout=PAGE_TIMEOUT_MS)


def _shown(micros: int) -> str:
    """A balance as the billing page writes it."""
    return f"{floatformat(credits(micros), '-3g')} credits"


def _reload_until(page: Page, target: Locator, text: str, *, timeout_s: float = 30) -> None:
    """Reload until `target` shows `text`: what the page shows comes from a webhook."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            expect(target).to_contain_text(text, timeout=1_000)
            return
        except AssertionError:
            page.reload()
    expect(target).to_contain_text(text)


def _acme_money() -> tuple[int, int, int, bool]:
    """acme's Checkout rows, ledger rows, balance and whether it has a Stripe customer."""
    acme = _acme()
    return (
        CheckoutSession.objects.filter(workspace=acme).count(),
        LedgerEntry.objects.filter(workspace=acme).count(),
        balance_get(workspace_id=acme.pk).balance_micros,
        BillingCustomer.objects.filter(workspace=acme).exists(),
    )


@pytest.fixture
def forget_stripe_events(stripe_fake_server: StripeFakeServer) -> Iterator[None]:
    """The webhook events the fake sends during the test are deleted from ours afterwards."""
    since = len(stripe_fake_server.state.events)
    yield
    ids = [event["id"] for event in stripe_fake_server.state.events[since:]]
    run_committed(lambda: StripeEvent.objects.filter(event_id__in=ids).delete())


@pytest.fixture
def acme_topups(forget_stripe_events: None) -> Iterator[None]:
    """Afterwards acme's credit is as before (a compensating adjustment for the top-ups made),
    and the Checkout rows and Stripe customer the test created are gone."""

    def snapshot() -> tuple[int, set[int], bool]:
        acme = _acme()
        last = LedgerEntry.objects.filter(workspace=acme).order_by("-pk").first()
        return (
            last.pk if last else 0,
            set(CheckoutSession.objects.filter(workspace=acme).values_list("pk", flat=True)),
            BillingCustomer.objects.filter(workspace=acme).exists(),
        )

    last_entry, sessions, had_customer = run_committed(snapshot)
    yield

    def undo() -> None:
        acme = _acme()
        topups = LedgerEntry.objects.filter(
            workspace=acme, reason=LedgerReason.TOPUP, pk__gt=last_entry
        )
        bought = sum(entry.delta_micros for entry in topups)
        if bought:
            ledger_post(
                workspace_id=acme.pk,
                delta_micros=-bought,
                reason=LedgerReason.ADJUSTMENT,
                idempotency_key=f"e2e-topup-undo:{uuid.uuid4().hex}",
                metadata={"why": "tests/e2e/test_billing.py takes its top-up back"},
            )
        CheckoutSession.objects.filter(workspace=acme).exclude(pk__in=sessions).delete()
        if not had_customer:
            BillingCustomer.objects.filter(workspace=acme).delete()

    run_committed(undo)


# --- top-up --------------------------------------------------------------------------------


def test_the_owner_tops_up_ten_dollars_through_checkout_and_sees_the_credit(
    live_server_asgi: AsgiServer,
    stripe_fake_server: StripeFakeServer,
    page: Page,
    acme_topups: None,
) -> None:
    # given the acme owner on acme's billing page, which shows the balance in credits
    before = run_committed(lambda: balance_get(workspace_id=_acme().pk).balance_micros)
    _log_in(page, live_server_asgi, OWNER, "/billing/")
    balance = page.get_by_test_id("balance")
    expect(balance).to_contain_text(_shown(before))

    # when they top up $10 and press Pay on Stripe's hosted Checkout page
    page.get_by_label(AMOUNT).fill("10")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page).to_have_url(
        re.compile(re.escape(f"{stripe_fake_server.url}/c/pay/cs_")), timeout=STRIPE_TIMEOUT_MS
    )
    expect(page.locator("body")).to_contain_text("Pay $10.00 USD once")
    page.get_by_role("button", name="Pay").click()

    # then they are back on the billing page with the banner, and 10,000 credits more
    expect(page).to_have_url(
        live_server_asgi.url("/billing/?checkout=success", workspace="acme"),
        timeout=STRIPE_TIMEOUT_MS,
    )
    expect(page.get_by_test_id("checkout-banner")).to_have_text(PAID_BANNER)
    _reload_until(page, balance, _shown(before + 10_000_000))
    newest = page.get_by_test_id("ledger").locator("tbody tr").first
    expect(newest).to_contain_text("topup")
    expect(newest).to_contain_text("+10,000")

    # and the ledger holds one $10 top-up, paid, from the Checkout the page started
    def bought() -> tuple[list[tuple[int, int]], list[str]]:
        acme = _acme()
        rows = LedgerEntry.objects.filter(workspace=acme, reason=LedgerReason.TOPUP).order_by(
            "-pk"
        )[:1]
        checkout = CheckoutSession.objects.filter(workspace=acme).order_by("-created_at")[:1]
        return [(r.delta_micros, r.revenue_micros) for r in rows], [c.status for c in checkout]

    assert run_committed(bought) == ([(10_000_000, 10_000_000)], ["complete"])


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("0", POSITIVE),
        ("-5", POSITIVE),
        # Chromium keeps no letters in a number field: the form arrives empty.
        ("abc", REQUIRED),
        # and drops the commas: 1000000 arrives.
        ("1,000,000", LARGEST),
    ],
    ids=["zero", "negative", "letters", "a-million"],
)
def test_a_bad_top_up_is_refused_next_to_the_field_and_nothing_is_bought(
    live_server_asgi: AsgiServer,
    stripe_fake_server: StripeFakeServer,
    page: Page,
    typed: str,
    error: str,
) -> None:
    # given the acme owner on the billing page
    sessions_at_stripe = len(stripe_fake_server.state.sessions)
    before = run_committed(_acme_money)
    _log_in(page, live_server_asgi, OWNER, "/billing/")

    # when they type a bad amount, key by key as a person does, and continue to payment
    page.get_by_label(AMOUNT).press_sequentially(typed)
    with page.expect_response(lambda r: r.url.endswith("/billing/top-up/")) as answer:
        page.get_by_role("button", name="Continue to payment").click()

    # then the page comes back (400, not 500) with the precise error in the amount's field
    assert answer.value.status == 400
    field = page.get_by_test_id("topup-form").locator(".field", has=page.get_by_label(AMOUNT))
    expect(field.get_by_role("alert")).to_have_text(error)
    expect(page.get_by_label(AMOUNT)).to_have_attribute("aria-invalid", "true")
    # and nothing was started at Stripe nor written here
    assert len(stripe_fake_server.state.sessions) == sessions_at_stripe
    assert run_committed(_acme_money) == before


# --- the paywall in the chat ---------------------------------------------------------------


@pytest.fixture
def acme_at_zero() -> Iterator[datetime]:
    """acme's balance taken to zero by an operator adjustment and given back afterwards by a
    compensating one; the chats, messages and call records made meanwhile are removed. Both
    adjustments are newer ledger entries, so the gateway's credit hash follows each at once."""
    started = timezone.now()

    def take() -> int:
        acme = _acme()
        balance = balance_get(workspace_id=acme.pk).balance_micros
        if balance > 0:
            credits_take(
                workspace_id=acme.pk,
                amount_micros=balance,
                metadata={"why": "tests/e2e/test_billing.py: the paywall"},
            )
        return max(balance, 0)

    taken = run_committed(take)
    yield started

    def give_back() -> None:
        acme = _acme()
        try:
            users = User.objects.filter(email__in=[OWNER, MEMBER])
            with schema_context(acme.schema_name):
                Conversation.objects.filter(user_id__in=[user.pk for user in users]).delete()
            call_records_flush()
            LlmCallLog.objects.filter(workspace=acme, created_at__gte=started).delete()
            # The dashboards' rollups counted the deleted calls: recount the days touched.
            rollups_rebuild(since=started.date(), until=timezone.now().date() + timedelta(days=1))
        finally:
            if taken:
                credits_grant(
                    workspace_id=acme.pk,
                    amount_micros=taken,
                    reason=LedgerReason.ADJUSTMENT,
                    metadata={"why": "tests/e2e/test_billing.py gives the paywall's credit back"},
                )

    run_committed(give_back)


SEND_OVER_THE_SOCKET = """([conversation, text]) => new Promise((resolve) => {
    const frames = [];
    const socket = new WebSocket(`ws://${location.host}/ws/chat/`);
    const end = (extra) => { socket.close(); resolve(extra ? [...frames, extra] : frames); };
    setTimeout(() => end({type: "timeout"}), 30000);
    socket.onopen = () => socket.send(JSON.stringify({type: "send", conversation, text}));
    socket.onmessage = (event) => {
        const frame = JSON.parse(event.data);
        frames.push(frame);
        if (frame.type === "error" || frame.type === "done") end();
    };
    socket.onclose = (event) => end({type: "closed", code: event.code});
})"""


def test_at_zero_credit_the_owner_gets_the_top_up_panel_and_no_model_is_called(
    live_server_asgi: AsgiServer, page: Page, acme_at_zero: datetime
) -> None:
    # given acme's balance is zero
    # when the owner opens a new chat
    _log_in(page, live_server_asgi, OWNER, "/chat/")
    page.get_by_test_id("new-chat").click()
    expect(page).to_have_url(CONVERSATION_URL, timeout=PAGE_TIMEOUT_MS)

    # then the out-of-credits panel with a link to the billing page stands where the composer was
    panel = page.get_by_test_id("credits-panel")
    expect(panel).to_contain_text("Out of credits — top up or upgrade.")
    expect(panel.get_by_test_id("top-up")).to_have_attribute("href", "/billing/")
    expect(page.get_by_test_id("composer")).to_have_count(0)

    # and a message sent over the chat socket anyway is refused before any model is called
    conversation = int(page.locator("#chat-main").get_attribute("data-conversation") or 0)
    frames: list[dict[str, Any]] = page.evaluate(
        SEND_OVER_THE_SOCKET, [conversation, "Answer anyway, please."]
    )
    assert frames[-1]["type"] == "error", frames
    assert frames[-1]["message"] == OUT_OF_CREDITS
    assert not [frame for frame in frames if frame["type"] == "token"]

    def calls() -> list[tuple[str, list[Any], int, int]]:
        call_records_flush()  # what beat does every two seconds
        rows = LlmCallLog.objects.filter(workspace=_acme(), created_at__gte=acme_at_zero)
        return [(r.status, r.attempts, r.output_tokens, r.cost_micros) for r in rows]

    assert run_committed(calls) == [("error", [], 0, 0)]  # refused: no provider attempt

    # and the panel's link leads to the billing page, which shows the empty balance
    panel.get_by_test_id("top-up").click()
    expect(page).to_have_url(live_server_asgi.url("/billing/", workspace="acme"))
    expect(page.get_by_test_id("balance")).to_contain_text(_shown(0))


def test_at_zero_credit_a_member_is_told_to_ask_an_admin(
    live_server_asgi: AsgiServer, page: Page, acme_at_zero: datetime
) -> None:
    # given acme's balance is zero
    # when a plain member opens a new chat
    _log_in(page, live_server_asgi, MEMBER, "/chat/")
    page.get_by_test_id("new-chat").click()
    expect(page).to_have_url(CONVERSATION_URL, timeout=PAGE_TIMEOUT_MS)

    # then the panel tells them to ask an owner or admin, with no billing link and no composer
    panel = page.get_by_test_id("credits-panel")
    expect(panel).to_contain_text("Out of credits — top up or upgrade.")
    expect(panel).to_contain_text("Ask a workspace owner or admin to top up or upgrade the plan.")
    expect(panel.get_by_test_id("top-up")).to_have_count(0)
    expect(page.get_by_test_id("composer")).to_have_count(0)


# --- outcomes ------------------------------------------------------------------------------


@pytest.fixture
def pending_outcome() -> Iterator[Outcome]:
    """A pending 250-credit outcome of acme, committed, deleted afterwards (never billed)."""
    outcome = run_committed(
        lambda: outcome_record(
            workspace=_acme(),
            kind="ticket resolved",
            price_micros=250_000,
            external_id=f"e2e-ticket-{uuid.uuid4().hex[:8]}",
        )
    )
    yield outcome
    run_committed(lambda: Outcome.objects.filter(pk=outcome.pk).delete())


def _outcome_state(outcome: Outcome) -> Callable[[], tuple[str, str]]:
    def state() -> tuple[str, str]:
        row = Outcome.objects.get(pk=outcome.pk)
        return row.status, row.dispute_reason

    return state


def test_the_owner_disputes_an_outcome_with_a_reason(
    live_server_asgi: AsgiServer, page: Page, pending_outcome: Outcome
) -> None:
    # given a pending outcome of acme, listed on the billing page with a dispute form
    _log_in(page, live_server_asgi, OWNER, "/billing/")
    row = page.locator(f"tr[data-outcome-id='{pending_outcome.pk}']")
    expect(row).to_contain_text("ticket resolved")
    expect(row).to_contain_text(pending_outcome.external_id)
    expect(row).to_contain_text("Pending")

    # when the owner disputes it with a reason
    row.get_by_label(REASON).fill("The customer reopened the ticket the next day.")
    row.get_by_role("button", name="Dispute").click()

    # then the page says so and the row is marked disputed, with no form left to send
    expect(page).to_have_url(live_server_asgi.url("/billing/#outcomes", workspace="acme"))
    expect(page.locator("ul.messages")).to_contain_text(
        "Outcome “ticket resolved” disputed; staff will review it."
    )
    expect(row).to_contain_text("Disputed")
    today = timezone.now().astimezone(UTC).date()
    expect(row).to_contain_text(f"Disputed {today:%Y-%m-%d}: staff will review it.")
    expect(row.get_by_role("button", name="Dispute")).to_have_count(0)
    assert run_committed(_outcome_state(pending_outcome)) == (
        OutcomeStatus.DISPUTED,
        "The customer reopened the ticket the next day.",
    )


def test_a_dispute_without_a_reason_is_refused_and_the_outcome_stays_pending(
    live_server_asgi: AsgiServer, page: Page, pending_outcome: Outcome
) -> None:
    # given the owner on the billing page, counting what the browser posts to the dispute
    _log_in(page, live_server_asgi, OWNER, "/billing/")
    action = f"/billing/outcomes/{pending_outcome.pk}/dispute/"
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.url.endswith(action) else None)
    row = page.locator(f"tr[data-outcome-id='{pending_outcome.pk}']")
    reason = row.get_by_label(REASON)

    # when they press Dispute with no reason, then with only spaces
    row.get_by_role("button", name="Dispute").click()
    empty_is_missing = reason.evaluate("box => box.validity.valueMissing")
    reason.fill("   ")
    with page.expect_response(lambda r: r.url.endswith(action)) as answer:
        row.get_by_role("button", name="Dispute").click()

    # then the browser keeps the empty form (the field is required) and sends nothing; the
    # blank reason reaches the server, which answers 400 with the precise error
    assert empty_is_missing is True
    assert answer.value.status == 400
    assert len(posted) == 1
    # next to its field, which is marked invalid
    refused_reason = page.locator(f"tr[data-outcome-id='{pending_outcome.pk}']").get_by_label(
        REASON
    )
    expect(refused_reason).to_have_accessible_description(
        "Say why this outcome should not be billed."
    )
    expect(refused_reason).to_have_attribute("aria-invalid", "true")
    # and the outcome is still pending, still open to a dispute
    expect(page.locator(f"tr[data-outcome-id='{pending_outcome.pk}']")).to_contain_text("Pending")
    assert run_committed(_outcome_state(pending_outcome)) == (OutcomeStatus.PENDING, "")


# --- managing the subscription in Stripe's portal ------------------------------------------


def _day(moment: datetime | None) -> str:
    assert moment is not None
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def test_the_owner_cancels_at_period_end_in_the_portal_and_sees_when_it_ends(
    live_server_asgi: AsgiServer,
    stripe_fake_server: StripeFakeServer,
    page: Page,
    make_committed_workspace: Callable[..., Workspace],
    forget_stripe_events: None,
) -> None:
    # given the owner of a committed free workspace, who subscribes to Pro through Checkout
    workspace = make_committed_workspace()
    email = run_committed(
        lambda: Membership.objects.get(workspace=workspace, role=Role.OWNER).user.email
    )
    _log_in(page, live_server_asgi, email, "/billing/", workspace=workspace.slug)
    page.get_by_test_id("upgrade-pro").click()
    expect(page.locator("body")).to_contain_text(
        "Pay $20.00 USD per month", timeout=STRIPE_TIMEOUT_MS
    )
    page.get_by_role("button", name="Pay").click()
    expect(page.get_by_test_id("checkout-banner")).to_have_text(
        PAID_BANNER, timeout=STRIPE_TIMEOUT_MS
    )
    subscription = page.get_by_test_id("subscription")
    _reload_until(page, subscription, "Pro subscription: active; renews on")

    # when they press Manage subscription, then "Cancel at period end" in the portal, and return
    page.get_by_test_id("manage-subscription").click()
    expect(page).to_have_url(
        re.compile(re.escape(f"{stripe_fake_server.url}/p/session/bps_")),
        timeout=STRIPE_TIMEOUT_MS,
    )
    page.get_by_role("button", name="Cancel at period end").click()
    expect(page.get_by_role("button", name="Don't cancel")).to_be_visible(timeout=STRIPE_TIMEOUT_MS)
    # the portal sent its webhook before showing the page again: the date is stored
    cancel_at = run_committed(lambda: Subscription.objects.get(workspace=workspace).cancel_at)
    expect(page.locator("body")).to_contain_text(f"Cancels on {_day(cancel_at)}")
    page.get_by_role("link", name="Return").click()

    # then the billing page welcomes them back and says when the subscription ends
    expect(page).to_have_url(
        live_server_asgi.url("/billing/?portal=return", workspace=workspace.slug),
        timeout=STRIPE_TIMEOUT_MS,
    )
    expect(page.get_by_test_id("checkout-banner")).to_have_text(PORTAL_BANNER)
    _reload_until(page, page.get_by_test_id("cancels-on"), f"cancels on {_day(cancel_at)}")
    expect(subscription).to_contain_text("Pro subscription: active")
    expect(subscription).not_to_contain_text("renews on")
    assert run_committed(lambda: Workspace.objects.get(pk=workspace.pk).plan) == "pro"
    assert cancel_at is not None
    assert cancel_at > timezone.now()


# --- who may see billing -------------------------------------------------------------------


def test_a_member_gets_the_refusal_page(live_server_asgi: AsgiServer, page: Page) -> None:
    # given a plain member of acme, logged in
    _log_in(page, live_server_asgi, MEMBER, "/")

    # when they open acme's billing page
    response = page.goto(live_server_asgi.url("/billing/", workspace="acme"))

    # then they are refused (403) with the reason, and see no balance
    assert response is not None
    assert response.status == 403
    expect(page.get_by_test_id("billing-refused")).to_contain_text(
        "Only owners and admins of Acme can see its billing"
    )
    expect(page.get_by_test_id("balance")).to_have_count(0)


def test_the_owner_of_another_workspace_gets_404(live_server_asgi: AsgiServer, page: Page) -> None:
    # given globex's owner, logged in on acme's host
    _log_in(page, live_server_asgi, GLOBEX_OWNER, "/")

    # when they open acme's billing page
    response = page.goto(live_server_asgi.url("/billing/", workspace="acme"))

    # then it is not found, and nothing of acme's billing shows
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.get_by_test_id("balance")).to_have_count(0)
    expect(page.get_by_text("Acme")).to_have_count(0)
