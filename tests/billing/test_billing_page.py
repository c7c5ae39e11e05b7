"""The workspace billing page (/billing/ on the workspace host): owners and admins see the
balance, plan, usage chart, ledger and outcomes; they top up and upgrade through Checkout (the
loopback Stripe fake, `stripe_fake` in tests/billing/conftest.py) and dispute outcomes.
Members are refused; outsiders get 404."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.template.defaultfilters import floatformat
from django.test import Client, override_settings
from django.utils import timezone

from aisaas.devstack.stripe_fake import StripeFakeServer
from apps.billing.ledger import balance_get, credits
from apps.billing.models import CheckoutSession, LedgerReason, Outcome, OutcomeStatus
from apps.billing.outcomes import outcome_record
from apps.billing.templatetags.money import dollars
from apps.workspaces.models import Membership, Role, User, Workspace
from tests.conftest import host_client
from tests.factories import LedgerEntryFactory

pytestmark = pytest.mark.django_db

ACME = "acme.localhost"


def post(workspace: Workspace, delta: int, reason: str) -> None:
    LedgerEntryFactory.create(workspace=workspace, delta_micros=delta, reason=reason)


def outcome(workspace: Workspace, **changes: object) -> Outcome:
    return outcome_record(
        workspace=workspace,
        kind=str(changes.get("kind", "ticket resolved")),
        price_micros=int(changes.get("price_micros", 300_000)),  # type: ignore[call-overload]
        external_id=f"ticket-{uuid.uuid4().hex[:8]}",
    )


def shown(micros: int) -> str:
    """Credits as the page prints them."""
    return floatformat(credits(micros), "-3g")


def test_the_owner_sees_balance_ledger_and_outcomes(acme: Workspace, owner: User) -> None:
    # given a top-up and a chat debit, and an outcome
    post(acme, 7_000_000, LedgerReason.TOPUP)
    post(acme, -1_234_000, "feature.chat")
    pending = outcome(acme, kind="lead qualified")
    balance = balance_get(workspace_id=acme.pk).balance_micros

    # when
    page = host_client(ACME, owner).get("/billing/")

    # then
    html = page.content.decode()
    assert page.status_code == 200
    assert page.context["balance_micros"] == balance
    assert f"{shown(balance)} credits" in html
    assert f"({dollars(balance)})" in html
    ledger = list(page.context["ledger_page"])
    assert [(e.reason, e.delta_micros) for e in ledger[:2]] == [
        ("feature.chat", -1_234_000),
        (LedgerReason.TOPUP, 7_000_000),
    ]
    assert "-1,234" in html
    assert "+7,000" in html
    assert "lead qualified" in html
    assert f'action="/billing/outcomes/{pending.pk}/dispute/"' in html
    assert 'data-testid="plan"' in html
    assert "Free" in html


def test_amounts_are_shown_signed_to_the_cent() -> None:
    assert dollars(-230_000) == "-$0.23"
    assert dollars(1_234_500_000) == "$1,234.50"
    assert dollars(0) == "$0.00"


def test_the_usage_chart_sums_feature_debits_of_the_last_30_days(
    acme: Workspace, owner: User
) -> None:
    # given feature debits today, 3 days ago and 40 days ago, and a top-up (not usage)
    a, b = f"feature.test-{uuid.uuid4().hex[:6]}", f"feature.test-{uuid.uuid4().hex[:6]}"
    now = timezone.now()
    post(acme, -2_000_000, a)
    post(acme, -500_000, b)
    with time_machine.travel(now - timedelta(days=3)):
        post(acme, -1_000_000, a)
    with time_machine.travel(now - timedelta(days=40)):
        post(acme, -9_000_000, a)
    post(acme, 5_000_000, LedgerReason.TOPUP)

    # when
    page = host_client(ACME, owner).get("/billing/")

    # then the chart has 30 days, and the two features with exactly their recent credits
    chart = page.context["chart"]
    fa, fb = a.removeprefix("feature."), b.removeprefix("feature.")
    assert len(chart.days) == 30
    assert chart.days[-1] == now.date()
    assert chart.totals[fa] == Decimal(3000)
    assert chart.totals[fb] == Decimal(500)
    assert chart.credits[fa][-1] == Decimal(2000)
    assert chart.credits[fa][-4] == Decimal(1000)
    # and the page embeds the same data for Chart.js (vendored, no CDN)
    html = page.content.decode()
    embedded = html.split('<script id="usage-data" type="application/json">')[1].split("</script>")[
        0
    ]
    data = json.loads(embedded)
    series = {d["label"]: d["data"] for d in data["datasets"]}
    assert series[fa][-1] == 2000.0
    assert series[fa][-4] == 1000.0
    assert sum(series[fa]) == 3000.0
    assert data["labels"][-1] == now.date().isoformat()
    assert "/static/vendor/chart.umd.min.js" in html
    assert "cdn" not in html.lower()


def test_the_ledger_is_paginated_newest_first(acme: Workspace, owner: User) -> None:
    for n in range(30):
        post(acme, -(n + 1) * 1_000, "feature.paging")
    client = host_client(ACME, owner)

    first = client.get("/billing/")
    second = client.get("/billing/?page=2")
    garbage = client.get("/billing/?page=nonsense")

    assert [e.delta_micros for e in first.context["ledger_page"]][:3] == [-30_000, -29_000, -28_000]
    assert len(first.context["ledger_page"]) == 25
    assert 'href="/billing/?page=2#ledger"' in first.content.decode()
    assert second.context["ledger_page"].number == 2
    assert [e.delta_micros for e in second.context["ledger_page"]][:5] == [
        -5_000,
        -4_000,
        -3_000,
        -2_000,
        -1_000,
    ]
    assert garbage.status_code == 200
    assert garbage.context["ledger_page"].number == 1


@pytest.mark.parametrize(
    ("value", "banner"),
    [
        ("success", "Payment received — your credits appear in a few seconds."),
        ("cancelled", "Checkout was cancelled; nothing was charged."),
    ],
)
def test_the_checkout_return_shows_a_banner(owner: User, value: str, banner: str) -> None:
    page = host_client(ACME, owner).get(f"/billing/?checkout={value}")

    assert page.status_code == 200
    assert banner in page.content.decode()


def test_a_member_gets_a_friendly_refusal(acme: Workspace, member: User) -> None:
    client = host_client(ACME, member)
    target = outcome(acme)

    page = client.get("/billing/")
    topup = client.post("/billing/top-up/", {"usd": "20"})
    upgrade = client.post("/billing/upgrade/", {"plan": "pro"})
    dispute = client.post(f"/billing/outcomes/{target.pk}/dispute/", {"reason": "Mine."})

    assert page.status_code == topup.status_code == upgrade.status_code == 403
    assert dispute.status_code == 403
    assert "Only owners and admins of Acme can see its billing" in page.content.decode()
    assert "balance_micros" not in page.context
    assert not CheckoutSession.objects.filter(workspace=acme).exists()
    assert Outcome.objects.get(pk=target.pk).status == OutcomeStatus.PENDING


def test_an_admin_sees_the_page(acme: Workspace, member: User) -> None:
    Membership.objects.filter(workspace=acme, user=member).update(role=Role.ADMIN)

    assert host_client(ACME, member).get("/billing/").status_code == 200


def test_the_billing_link_is_shown_to_managers_only(owner: User, member: User) -> None:
    assert 'data-testid="nav-billing"' in host_client(ACME, owner).get("/").content.decode()
    assert 'data-testid="nav-billing"' not in host_client(ACME, member).get("/").content.decode()


def test_an_outsider_gets_404_and_cannot_dispute(
    acme: Workspace, globex: Workspace, outsider: User
) -> None:
    target = outcome(acme)
    globex_owner = User.objects.get(email="owner@globex.test")

    on_acme = host_client(ACME, outsider)
    assert on_acme.get("/billing/").status_code == 404
    assert (
        on_acme.post(f"/billing/outcomes/{target.pk}/dispute/", {"reason": "x"}).status_code == 404
    )
    # acme's outcome id on globex's own billing page is not found either
    on_globex = host_client("globex.localhost", globex_owner)
    assert (
        on_globex.post(f"/billing/outcomes/{target.pk}/dispute/", {"reason": "x"}).status_code
        == 404
    )
    assert Outcome.objects.get(pk=target.pk).status == OutcomeStatus.PENDING
    assert target.external_id not in on_globex.get("/billing/").content.decode()


@pytest.mark.parametrize(
    ("usd", "error"),
    [
        ("-5", "A top-up must be a positive amount of dollars."),
        ("0", "A top-up must be a positive amount of dollars."),
        ("twenty", "Enter the amount as a whole number of dollars, e.g. 20."),
        ("", "Enter an amount in dollars, e.g. 20."),
        ("12.50", "Top-ups are in whole dollars (no cents)."),
        ("2", "The smallest top-up is $5."),
        ("1000001", "The largest top-up is $1,000."),
        ("1e400", "The largest top-up is $1,000."),
        ("NaN", "Enter the amount as a whole number of dollars, e.g. 20."),
    ],
)
def test_a_bad_top_up_is_refused_next_to_the_field(
    acme: Workspace, owner: User, usd: str, error: str
) -> None:
    page = host_client(ACME, owner).post("/billing/top-up/", {"usd": usd})

    assert page.status_code == 400
    assert page.context["topup_form"].errors["usd"] == [error]
    assert f'<p class="error" role="alert">{error}</p>' in page.content.decode().replace(
        "&#x27;", "'"
    )
    assert not CheckoutSession.objects.filter(workspace=acme).exists()


def test_a_top_up_goes_to_checkout(
    acme: Workspace, owner: User, stripe_fake: StripeFakeServer
) -> None:
    response = host_client(ACME, owner).post("/billing/top-up/", {"usd": "20"})

    assert response.status_code == 302
    assert response["Location"].startswith(stripe_fake.url)
    session = CheckoutSession.objects.get(workspace=acme)
    assert (session.kind, session.amount_micros, session.created_by_id) == (
        "topup",
        20_000_000,
        owner.pk,
    )
    assert session.stripe_session_id in response["Location"]


def test_a_top_up_without_a_payment_provider_says_so(acme: Workspace, owner: User) -> None:
    with override_settings(STRIPE_SECRET_KEY=""):
        page = host_client(ACME, owner).post("/billing/top-up/", {"usd": "20"})

    assert page.status_code == 503
    assert "Payments are not configured" in page.content.decode()
    assert not CheckoutSession.objects.filter(workspace=acme).exists()


def test_an_upgrade_goes_to_checkout(
    acme: Workspace, owner: User, stripe_fake: StripeFakeServer
) -> None:
    page = host_client(ACME, owner).get("/billing/")
    assert 'data-testid="upgrade-pro"' in page.content.decode()

    response = host_client(ACME, owner).post("/billing/upgrade/", {"plan": "pro"})

    assert response.status_code == 302
    assert response["Location"].startswith(stripe_fake.url)
    session = CheckoutSession.objects.get(workspace=acme)
    assert (session.kind, session.plan_code) == ("subscription", "pro")


@pytest.mark.parametrize(
    ("plan", "error"),
    [
        ("gold", "There is no plan called &#x27;gold&#x27;."),
        ("enterprise", "arranged with our sales team"),
        ("", "Choose one of the plans below."),
        ("free", "The Free plan is free: there is nothing to buy."),
    ],
)
def test_a_bad_upgrade_is_refused_with_a_message(
    acme: Workspace, owner: User, plan: str, error: str
) -> None:
    page = host_client(ACME, owner).post("/billing/upgrade/", {"plan": plan})

    assert page.status_code == 400
    assert error in page.content.decode()
    assert not CheckoutSession.objects.filter(workspace=acme).exists()


def test_the_owner_disputes_an_outcome_from_the_page(acme: Workspace, owner: User) -> None:
    target = outcome(acme)
    client: Client = host_client(ACME, owner)

    response = client.post(
        f"/billing/outcomes/{target.pk}/dispute/", {"reason": "The ticket was reopened."}
    )

    assert response.status_code == 302
    assert response["Location"] == "/billing/#outcomes"
    disputed = Outcome.objects.get(pk=target.pk)
    assert (disputed.status, disputed.dispute_reason) == (
        OutcomeStatus.DISPUTED,
        "The ticket was reopened.",
    )
    page = client.get("/billing/").content.decode()
    assert "staff will review it" in page
    assert f'action="/billing/outcomes/{target.pk}/dispute/"' not in page


def test_a_dispute_without_a_reason_is_refused(acme: Workspace, owner: User) -> None:
    target = outcome(acme)

    page = host_client(ACME, owner).post(f"/billing/outcomes/{target.pk}/dispute/", {"reason": " "})

    assert page.status_code == 400
    html = page.content.decode()
    # the error stands at this outcome's field, which keeps what was typed
    assert f'aria-invalid="true" aria-describedby="dispute-{target.pk}-error"> </textarea>' in html
    assert (
        f'<p class="error" id="dispute-{target.pk}-error" role="alert">'
        "Say why this outcome should not be billed.</p>"
    ) in html
    assert Outcome.objects.get(pk=target.pk).status == OutcomeStatus.PENDING


def test_a_dispute_after_the_window_is_refused_on_the_page(acme: Workspace, owner: User) -> None:
    target = outcome(acme)

    with time_machine.travel(target.window_ends_at + timedelta(hours=1)):
        page = host_client(ACME, owner).post(
            f"/billing/outcomes/{target.pk}/dispute/", {"reason": "Too late?"}
        )

    assert page.status_code == 400
    html = page.content.decode()
    assert (
        f"The dispute window for this outcome closed on {target.window_ends_at:%Y-%m-%d %H:%M} UTC"
        in html
    )
    assert Outcome.objects.get(pk=target.pk).status == OutcomeStatus.PENDING
