"""Finance in Django admin (public host): the `finance` group sees balances, the ledger (read
only), outcomes (and resolves disputes), the per-workspace overview with its red flags and the
ledger CSV export; it gets nothing of traces. Plain staff get none of it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.db import connection
from django.http import StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.billing.finance import FinanceRow, finance_overview
from apps.billing.ledger import balance_get
from apps.billing.models import LedgerEntry, LedgerReason, Outcome, OutcomeStatus, Plan
from apps.billing.outcomes import outcome_dispute, outcome_record
from apps.workspaces.models import Membership, User, Workspace
from tests.conftest import host_client
from tests.factories import LedgerEntryFactory, UserFactory

pytestmark = pytest.mark.django_db

FEB = datetime(2024, 2, 10, 12, 0, tzinfo=UTC)
FEB_START, MAR_START = datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def finance_user() -> User:
    user = UserFactory.create(email="finance@platform.test", is_staff=True)
    user.groups.add(Group.objects.get(name="finance"))
    return user


@pytest.fixture
def finance(finance_user: User) -> Client:
    return host_client("localhost", finance_user)


@pytest.fixture
def plain_staff() -> Client:
    return host_client("localhost", UserFactory.create(email="staff@platform.test", is_staff=True))


@pytest.fixture
def superuser() -> Client:
    user = UserFactory.create(email="root@platform.test", is_staff=True, is_superuser=True)
    return host_client("localhost", user)


@pytest.fixture
def initech(db: None) -> Workspace:
    """A workspace row without a schema: the ledger and the overview only need its id."""
    return Workspace.objects.create(name="Initech", slug="initech", schema_name="initech")


def post(
    workspace: Workspace, delta: int, reason: str, key: str, *, revenue: int = 0, at: datetime = FEB
) -> None:
    with time_machine.travel(at, tick=False):
        LedgerEntryFactory.create(
            workspace=workspace,
            delta_micros=delta,
            reason=reason,
            idempotency_key=key,
            revenue_micros=revenue,
            metadata={"cost_micros": -delta} if delta < 0 else {},
        )


@pytest.fixture
def february(acme: Workspace, globex: Workspace, initech: Workspace) -> None:
    """A constructed ledger for February 2024, and entries just outside it."""
    # acme: granted 20 + 5 + 1 = 26 000 credits, consumed 0.5 + 3 + 2 + 1 = 6 500,
    # revenue $25, provider cost $5 (chat + agent run): 20 %, not flagged
    post(acme, 20_000_000, LedgerReason.PLAN_GRANT, "t:acme:grant", revenue=20_000_000)
    post(acme, 5_000_000, LedgerReason.TOPUP, "t:acme:topup", revenue=5_000_000)
    post(acme, 1_000_000, LedgerReason.ADJUSTMENT, "t:acme:adj+")
    post(acme, -500_000, LedgerReason.ADJUSTMENT, "t:acme:adj-")
    post(acme, -3_000_000, "feature.chat", "t:acme:chat")
    post(acme, -2_000_000, LedgerReason.AGENT_RUN, "t:acme:run")
    post(acme, -1_000_000, LedgerReason.OUTCOME, "t:acme:outcome")
    post(acme, -7_000_000, "feature.chat", "t:acme:march", at=MAR_START)
    post(
        acme,
        9_000_000,
        LedgerReason.TOPUP,
        "t:acme:jan",
        revenue=9_000_000,
        at=FEB_START.replace(day=1, month=1),
    )
    # globex: $2 of revenue, $1 of provider cost: 50 %, flagged
    post(globex, 2_000_000, LedgerReason.TOPUP, "t:globex:topup", revenue=2_000_000)
    post(globex, -1_000_000, "feature.rag", "t:globex:rag")
    # initech: cost and no revenue at all: flagged "no revenue"
    post(initech, -250_000, "feature.chat", "t:initech:chat")


def row(workspace: Workspace, start: datetime = FEB_START, end: datetime = MAR_START) -> FinanceRow:
    return next(r for r in finance_overview(start=start, end=end).rows if r.slug == workspace.slug)


def test_the_overview_sums_each_workspace_exactly(
    february: None, acme: Workspace, globex: Workspace, initech: Workspace
) -> None:
    overview = finance_overview(start=FEB_START, end=MAR_START)

    a, g, i = row(acme), row(globex), row(initech)
    assert (a.granted_micros, a.consumed_micros, a.revenue_micros, a.cost_micros) == (
        26_000_000,
        6_500_000,
        25_000_000,
        5_000_000,
    )
    assert a.ratio == Decimal("0.2")
    assert a.flag == ""
    assert (g.granted_micros, g.consumed_micros, g.revenue_micros, g.cost_micros) == (
        2_000_000,
        1_000_000,
        2_000_000,
        1_000_000,
    )
    assert g.ratio == Decimal("0.5")
    assert g.flag == "above 30%"
    assert (i.revenue_micros, i.cost_micros, i.ratio, i.flag) == (0, 250_000, None, "no revenue")
    # balances are today's, from the balance rows
    assert a.balance_micros == balance_get(workspace_id=acme.pk).balance_micros
    assert i.balance_micros == -250_000
    # the costliest first, and a total
    assert overview.rows[0].slug == acme.slug
    assert overview.total.cost_micros == sum(r.cost_micros for r in overview.rows)


def test_the_overview_is_three_queries_whatever_the_number_of_workspaces(
    february: None,
) -> None:
    for n in range(5):
        Workspace.objects.create(name=f"More {n}", slug=f"more-{n}", schema_name=f"more_{n}")

    with CaptureQueriesContext(connection) as queries:
        overview = finance_overview(start=FEB_START, end=MAR_START)

    # (django-tenants sets the search path before some queries: those are not counted)
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert len(selects) == 3
    assert len(overview.rows) >= 8


def test_the_finance_page_shows_the_numbers_and_flags(
    february: None, finance: Client, acme: Workspace, globex: Workspace, initech: Workspace
) -> None:
    page = finance.get("/admin/billing/finance/", {"start": "2024-02-01", "end": "2024-02-29"})

    html = page.content.decode()
    assert page.status_code == 200
    acme_row = html.split(f'data-workspace="{acme.slug}"')[1].split("</tr>")[0]
    assert '<td class="granted">26,000</td>' in acme_row
    assert '<td class="consumed">6,500</td>' in acme_row
    assert '<td class="revenue">25.00</td>' in acme_row
    assert '<td class="cost">5.0000</td>' in acme_row
    assert '<td class="ratio">20 %</td>' in acme_row
    assert "<strong" not in acme_row
    globex_row = html.split(f'data-workspace="{globex.slug}"')[1].split("</tr>")[0]
    assert "above 30%" in globex_row
    assert '<td class="ratio">50 %</td>' in globex_row
    initech_row = html.split(f'data-workspace="{initech.slug}"')[1].split("</tr>")[0]
    assert "no revenue" in initech_row
    assert 'href="/admin/traces/dashboard/"' in html
    assert 'href="/admin/billing/ledger-export/' in html


def test_the_overview_defaults_to_this_month(finance: Client, acme: Workspace) -> None:
    LedgerEntryFactory.create(
        workspace=acme, delta_micros=-4_000, reason="feature.chat", idempotency_key="t:now"
    )
    today = timezone.now().astimezone(UTC).date()

    page = finance.get("/admin/billing/finance/")

    assert page.status_code == 200
    overview = page.context["overview"]
    assert overview.start == datetime(today.year, today.month, 1, tzinfo=UTC)
    assert next(r for r in overview.rows if r.slug == acme.slug).cost_micros >= 4_000


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"start": "2024-13-01"}, "Enter a date as YYYY-MM-DD."),
        ({"start": "yesterday"}, "Enter a date as YYYY-MM-DD."),
        ({"start": "2024-03-01", "end": "2024-02-01"}, "The end date is before the start date."),
        ({"end": "9999-12-31"}, "Choose an earlier end date."),
    ],
)
def test_a_bad_period_is_reported_and_this_month_shown(
    finance: Client, query: dict[str, str], error: str
) -> None:
    page = finance.get("/admin/billing/finance/", query)

    assert page.status_code == 400
    assert error in page.content.decode()
    assert page.context["overview"].start.day == 1


def csv_rows(response: HttpResponseBase) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)  # streamed, not built in memory
    body = b"".join(cast(Iterable[bytes], response.streaming_content)).decode()
    return list(csv.reader(io.StringIO(body)))


def test_the_csv_export_lists_the_period_oldest_first(
    february: None, finance: Client, acme: Workspace
) -> None:
    response = finance.get(
        "/admin/billing/ledger-export/",
        {"start": "2024-02-01", "end": "2024-02-29", "workspace": "acme"},
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="ledger-2024-02-01-2024-02-29-acme.csv"' in response["Content-Disposition"]
    header, *rows = csv_rows(response)
    assert header == [
        "id",
        "created_at",
        "workspace",
        "reason",
        "delta_micros",
        "credits",
        "balance_after_micros",
        "revenue_micros",
        "idempotency_key",
        "metadata",
    ]
    assert [r[8] for r in rows] == [
        "t:acme:grant",
        "t:acme:topup",
        "t:acme:adj+",
        "t:acme:adj-",
        "t:acme:chat",
        "t:acme:run",
        "t:acme:outcome",
    ]
    chat = rows[4]
    entry = LedgerEntry.objects.get(idempotency_key="t:acme:chat")
    assert chat == [
        str(entry.pk),
        "2024-02-10T12:00:00+00:00",
        "acme",
        "feature.chat",
        "-3000000",
        "-3000",
        str(entry.balance_after_micros),
        "0",
        "t:acme:chat",
        '{"cost_micros": 3000000}',
    ]


def test_the_csv_export_of_every_workspace(february: None, finance: Client) -> None:
    response = finance.get(
        "/admin/billing/ledger-export/", {"start": "2024-02-01", "end": "2024-02-29"}
    )

    keys = {r[8] for r in csv_rows(response)[1:]}
    assert {"t:globex:rag", "t:initech:chat", "t:acme:grant"} <= keys
    assert "t:acme:march" not in keys
    assert "t:acme:jan" not in keys


def test_an_empty_range_exports_just_the_header(finance: Client) -> None:
    response = finance.get(
        "/admin/billing/ledger-export/", {"start": "2001-01-01", "end": "2001-01-31"}
    )

    assert response.status_code == 200
    assert csv_rows(response) == [
        [
            "id",
            "created_at",
            "workspace",
            "reason",
            "delta_micros",
            "credits",
            "balance_after_micros",
            "revenue_micros",
            "idempotency_key",
            "metadata",
        ]
    ]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"start": "2024-02-30", "end": "2024-03-01"}, "Enter a date as YYYY-MM-DD."),
        ({"start": "", "end": "2024-03-01"}, "Choose a date (YYYY-MM-DD)."),
        ({"start": "2024-03-01", "end": "2024-01-01"}, "The end date is before the start date."),
        (
            {"start": "2024-01-01", "end": "2024-01-31", "workspace": "nope"},
            "No workspace has the address “nope”.",
        ),
    ],
)
def test_a_bad_export_request_is_answered_on_the_form(
    finance: Client, query: dict[str, str], error: str
) -> None:
    page = finance.get("/admin/billing/ledger-export/", query)

    assert page.status_code == 400
    assert error in page.content.decode()


def test_the_export_form_renders(finance: Client) -> None:
    page = finance.get("/admin/billing/ledger-export/")

    assert page.status_code == 200
    assert "Download CSV" in page.content.decode()


def test_plain_staff_get_no_finance_pages(plain_staff: Client) -> None:
    assert plain_staff.get("/admin/billing/finance/").status_code == 403
    assert plain_staff.get("/admin/billing/ledger-export/").status_code == 403
    assert plain_staff.get("/admin/billing/ledgerentry/").status_code == 403
    assert plain_staff.get("/admin/billing/creditbalance/").status_code == 403
    assert "Finance overview" not in plain_staff.get("/admin/").content.decode()


def test_anonymous_visitors_are_sent_to_the_admin_login(public_client: Client) -> None:
    response = public_client.get("/admin/billing/finance/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_workspace_owner_is_not_staff(owner: User) -> None:
    client = host_client("localhost", owner)

    assert client.get("/admin/billing/finance/").status_code == 302  # to the admin login


def test_finance_and_superusers_see_the_overview_linked_from_the_index(
    finance: Client, superuser: Client
) -> None:
    for client in (finance, superuser):
        index = client.get("/admin/").content.decode()
        assert 'href="/admin/billing/finance/"' in index
        assert client.get("/admin/billing/finance/").status_code == 200


def test_the_finance_group_sees_billing_but_no_trace_content(finance_user: User) -> None:
    for model in (
        "creditbalance",
        "ledgerentry",
        "outcome",
        "plan",
        "stripeevent",
        "checkoutsession",
        "subscription",
        "usagereport",
        "billingcustomer",
    ):
        assert finance_user.has_perm(f"billing.view_{model}")
    assert finance_user.has_perm("billing.change_outcome")
    assert not finance_user.has_perm("billing.change_ledgerentry")
    assert not finance_user.has_perm("traces.view_llmtrace")
    assert not finance_user.has_perm("traces.view_llmtraceraw")


def test_the_ledger_admin_is_read_only_and_searchable(
    february: None, finance: Client, superuser: Client
) -> None:
    entry = LedgerEntry.objects.get(idempotency_key="t:acme:chat")

    listing = finance.get("/admin/billing/ledgerentry/", {"q": "t:acme:chat"})
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [entry]
    assert finance.get("/admin/billing/ledgerentry/", {"q": "initech"}).status_code == 200
    filtered = finance.get("/admin/billing/ledgerentry/", {"reason": "feature.rag"})
    assert {e.reason for e in filtered.context["cl"].result_list} == {"feature.rag"}
    features = finance.get("/admin/billing/ledgerentry/", {"reason": "feature."})
    assert {e.reason for e in features.context["cl"].result_list} == {
        "feature.chat",
        "feature.rag",
    }
    topups = finance.get("/admin/billing/ledgerentry/", {"reason": "topup"})
    assert {e.reason for e in topups.context["cl"].result_list} == {"topup"}
    assert "Export CSV" in listing.content.decode()
    # append-only, for superusers too
    for client in (finance, superuser):
        assert client.get("/admin/billing/ledgerentry/add/").status_code == 403
        view = client.get(f"/admin/billing/ledgerentry/{entry.pk}/change/")
        assert view.status_code == 200
        assert 'name="_save"' not in view.content.decode()
        assert client.post(f"/admin/billing/ledgerentry/{entry.pk}/change/", {}).status_code == 403
        assert client.get(f"/admin/billing/ledgerentry/{entry.pk}/delete/").status_code == 403


def test_balances_are_listed_in_credits(
    february: None, finance: Client, initech: Workspace
) -> None:
    listing = finance.get("/admin/billing/creditbalance/", {"q": "initech"})

    assert listing.status_code == 200
    assert [b.workspace_id for b in listing.context["cl"].result_list] == [initech.pk]
    assert "-250" in listing.content.decode()


def test_plans_are_edited_by_superusers_only(finance: Client, superuser: Client) -> None:
    pro = Plan.objects.get(code="pro")
    url = f"/admin/billing/plan/{pro.pk}/change/"

    assert finance.get("/admin/billing/plan/").status_code == 200
    assert 'name="_save"' not in finance.get(url).content.decode()
    assert finance.post(url, {"name": "Cheap"}).status_code == 403
    assert 'name="_save"' in superuser.get(url).content.decode()
    assert Plan.objects.get(pk=pro.pk).name == "Pro"


def _disputed(acme: Workspace, owner: User, external_id: str) -> Outcome:
    outcome = outcome_record(
        workspace=acme, kind="ticket resolved", price_micros=400_000, external_id=external_id
    )
    membership = Membership.objects.get(workspace=acme, user=owner)
    return outcome_dispute(outcome=outcome, membership=membership, reason="Reopened.")


def test_finance_resolves_disputes_with_admin_actions(
    finance: Client, acme: Workspace, owner: User
) -> None:
    upheld, rejected = _disputed(acme, owner, "adm-1"), _disputed(acme, owner, "adm-2")
    pending = outcome_record(
        workspace=acme, kind="ticket resolved", price_micros=400_000, external_id="adm-3"
    )
    before = balance_get(workspace_id=acme.pk).balance_micros

    finance.post(
        "/admin/billing/outcome/",
        {"action": "uphold_disputes", "_selected_action": [upheld.pk, pending.pk]},
    )
    finance.post(
        "/admin/billing/outcome/", {"action": "reject_disputes", "_selected_action": [rejected.pk]}
    )

    assert Outcome.objects.get(pk=upheld.pk).status == OutcomeStatus.CREDITED
    assert Outcome.objects.get(pk=rejected.pk).status == OutcomeStatus.FINAL
    assert Outcome.objects.get(pk=pending.pk).status == OutcomeStatus.PENDING  # left alone
    assert balance_get(workspace_id=acme.pk).balance_micros == before - 400_000
    assert LedgerEntry.objects.filter(idempotency_key=f"outcome:{rejected.pk}").count() == 1
    assert not LedgerEntry.objects.filter(idempotency_key=f"outcome:{upheld.pk}").exists()
    # a single outcome is viewed, never edited
    view = finance.get(f"/admin/billing/outcome/{upheld.pk}/change/")
    assert view.status_code == 200
    assert 'name="_save"' not in view.content.decode()


def test_plain_staff_cannot_resolve_disputes(
    plain_staff: Client, acme: Workspace, owner: User
) -> None:
    outcome = _disputed(acme, owner, "adm-4")

    response = plain_staff.post(
        "/admin/billing/outcome/", {"action": "reject_disputes", "_selected_action": [outcome.pk]}
    )

    assert response.status_code == 403
    assert Outcome.objects.get(pk=outcome.pk).status == OutcomeStatus.DISPUTED
