"""`manage.py seed_demo` (run by `make run`) makes the demo's workspaces, logins, staff groups,
credit and a pending outcome, and running it again changes nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from apps.billing.models import LedgerEntry, Outcome, OutcomeStatus
from apps.console.management.commands.seed_demo import DEMO_PASSWORD
from apps.workspaces.models import Membership, User, Workspace

pytestmark = pytest.mark.django_db


def _seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def _counts() -> tuple[int, ...]:
    return (
        Workspace.objects.count(),
        User.objects.count(),
        Membership.objects.count(),
        LedgerEntry.objects.count(),
        Outcome.objects.count(),
    )


def test_seed_demo_makes_the_demo_and_a_second_run_changes_nothing() -> None:
    # when the demo is seeded twice
    printed = _seed()
    first = _counts()
    _seed()

    # then the logins work, staff are in their groups, acme has credit and one pending outcome,
    # and the second run added nothing
    assert _counts() == first
    assert DEMO_PASSWORD in printed
    # (the test database's own acme and globex users keep their passwords: seeding never resets)
    for email in ("member@globex.test", "admin@aisaas.test", "support@aisaas.test"):
        assert User.objects.get(email=email).check_password(DEMO_PASSWORD)
    assert User.objects.get(email="support@aisaas.test").groups.filter(name="support").exists()
    assert User.objects.get(email="finance@aisaas.test").groups.filter(name="finance").exists()
    acme = Workspace.objects.get(slug="acme")
    assert LedgerEntry.objects.filter(workspace=acme, reason="plan_grant").count() == 1
    outcome = Outcome.objects.get(workspace=acme)
    assert (outcome.kind, outcome.price_micros, outcome.status) == (
        "Ticket resolved",
        500_000,
        OutcomeStatus.PENDING,
    )
    assert not Outcome.objects.filter(workspace__slug="globex").exists()
