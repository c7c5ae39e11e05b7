"""Outcome billing: pending for the dispute window, then billed exactly once; disputes by
owners and admins only, within the window; staff decide disputes. Time is frozen where it counts."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import connections
from django.utils import timezone

from apps.billing.ledger import balance_get
from apps.billing.models import LedgerEntry, LedgerReason, Outcome, OutcomeStatus
from apps.billing.outcomes import (
    outcome_dispute,
    outcome_record,
    outcome_resolve_dispute,
    outcomes_finalise,
)
from apps.billing.tasks import finalise_outcomes
from apps.common.errors import ApplicationError, PermissionDeniedError
from apps.workspaces.models import Membership, User, Workspace
from tests.asgi_server import run_committed
from tests.factories import OutcomeFactory, UserFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
PRICE = 250_000  # $0.25 = 250 credits


def record(workspace: Workspace, *, price: int = PRICE, external_id: str | None = None) -> Outcome:
    return outcome_record(
        workspace=workspace,
        kind="ticket resolved",
        price_micros=price,
        external_id=external_id or f"ticket-{uuid.uuid4().hex[:8]}",
    )


def membership(workspace: Workspace, user: User) -> Membership:
    return Membership.objects.select_related("workspace").get(workspace=workspace, user=user)


def billed(outcome: Outcome) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(idempotency_key=f"outcome:{outcome.pk}"))


@pytest.fixture
def staff() -> User:
    return UserFactory.create(email="billing-staff@platform.test", is_staff=True)


def test_an_outcome_is_recorded_pending_until_the_window_ends(acme: Workspace) -> None:
    with time_machine.travel(T0, tick=False):
        outcome = record(acme, external_id="ticket-1", price=PRICE)

    assert outcome.status == OutcomeStatus.PENDING
    assert outcome.window_ends_at == T0 + timedelta(days=settings.OUTCOME_DISPUTE_WINDOW_DAYS)
    assert (outcome.kind, outcome.price_micros, outcome.workspace_id) == (
        "ticket resolved",
        PRICE,
        acme.pk,
    )
    assert billed(outcome) == []


def test_recording_the_same_external_id_again_returns_the_first_outcome(
    acme: Workspace, globex: Workspace
) -> None:
    first = record(acme, external_id="ticket-7")

    again = record(acme, external_id="ticket-7")
    elsewhere = record(globex, external_id="ticket-7")  # ids are per workspace

    assert again.pk == first.pk
    assert elsewhere.pk != first.pk
    assert Outcome.objects.filter(external_id="ticket-7").count() == 2


def test_the_same_external_id_with_another_price_is_refused(acme: Workspace) -> None:
    record(acme, external_id="ticket-8", price=PRICE)

    with pytest.raises(ApplicationError, match="already recorded with another kind or price"):
        record(acme, external_id="ticket-8", price=PRICE + 1)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"price_micros": 0}, "price_micros"),
        ({"price_micros": -100}, "price_micros"),
        ({"price_micros": 1.5}, "price_micros"),
        ({"price_micros": True}, "price_micros"),
        ({"kind": "  "}, "kind"),
        ({"kind": "k" * 101}, "kind"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": "x" * 201}, "external_id"),
        ({"trace_id": "not-a-uuid"}, "trace_id"),
        ({"run_id": "r" * 65}, "run_id"),
    ],
)
def test_bad_outcomes_are_refused_and_nothing_is_written(
    acme: Workspace, changes: dict[str, object], field: str
) -> None:
    values: dict[str, object] = {
        "kind": "ticket resolved",
        "price_micros": PRICE,
        "external_id": "ticket-bad",
        **changes,
    }

    with pytest.raises(ApplicationError) as refused:
        outcome_record(workspace=acme, **values)  # type: ignore[arg-type]

    assert refused.value.field == field
    assert not Outcome.objects.filter(workspace=acme).exists()


def test_pending_disputed_then_upheld_is_credited_and_never_billed(
    acme: Workspace, owner: User, staff: User
) -> None:
    before = balance_get(workspace_id=acme.pk).balance_micros
    with time_machine.travel(T0, tick=False):
        outcome = record(acme)
    with time_machine.travel(T0 + timedelta(days=3), tick=False):
        disputed = outcome_dispute(
            outcome=outcome, membership=membership(acme, owner), reason="The customer reopened it."
        )

    assert disputed.status == OutcomeStatus.DISPUTED
    assert disputed.disputed_by_id == owner.pk
    assert disputed.dispute_reason == "The customer reopened it."
    assert disputed.disputed_at == T0 + timedelta(days=3)

    # a disputed outcome is left alone by the finaliser, even long after its window
    assert outcomes_finalise(now=T0 + timedelta(days=30)) == 0

    credited = outcome_resolve_dispute(outcome=outcome, upheld=True, staff_user=staff)

    assert credited.status == OutcomeStatus.CREDITED
    assert credited.resolved_at is not None
    assert billed(outcome) == []
    assert balance_get(workspace_id=acme.pk).balance_micros == before


def test_pending_disputed_then_rejected_is_final_and_billed_once(
    acme: Workspace, owner: User, staff: User
) -> None:
    before = balance_get(workspace_id=acme.pk).balance_micros
    outcome = record(acme)
    outcome_dispute(outcome=outcome, membership=membership(acme, owner), reason="Not resolved.")

    final = outcome_resolve_dispute(outcome=outcome, upheld=False, staff_user=staff)

    assert final.status == OutcomeStatus.FINAL
    [entry] = billed(outcome)
    assert (entry.reason, entry.delta_micros, entry.workspace_id) == (
        LedgerReason.OUTCOME,
        -PRICE,
        acme.pk,
    )
    assert final.ledger_entry_id == entry.pk
    assert balance_get(workspace_id=acme.pk).balance_micros == before - PRICE
    # deciding again is refused and bills nothing more
    with pytest.raises(ApplicationError, match="Only disputed outcomes can be resolved"):
        outcome_resolve_dispute(outcome=outcome, upheld=False, staff_user=staff)
    assert len(billed(outcome)) == 1


def test_only_staff_resolve_disputes(acme: Workspace, owner: User) -> None:
    outcome = record(acme)
    outcome_dispute(outcome=outcome, membership=membership(acme, owner), reason="No.")

    with pytest.raises(PermissionDeniedError):
        outcome_resolve_dispute(outcome=outcome, upheld=True, staff_user=owner)

    assert Outcome.objects.get(pk=outcome.pk).status == OutcomeStatus.DISPUTED


def test_pending_becomes_final_after_the_window_and_is_billed_exactly_once(
    acme: Workspace,
) -> None:
    before = balance_get(workspace_id=acme.pk).balance_micros
    with time_machine.travel(T0, tick=False):
        outcome = record(acme)
    window = timedelta(days=settings.OUTCOME_DISPUTE_WINDOW_DAYS)

    # one second before the window ends: nothing happens
    with time_machine.travel(T0 + window - timedelta(seconds=1), tick=False):
        assert finalise_outcomes() == 0
    assert Outcome.objects.get(pk=outcome.pk).status == OutcomeStatus.PENDING

    # once it has ended: billed, then the beat task running again changes nothing
    with time_machine.travel(T0 + window, tick=False):
        assert finalise_outcomes() == 1
        assert finalise_outcomes() == 0
    with time_machine.travel(T0 + window + timedelta(hours=1), tick=False):
        assert finalise_outcomes() == 0

    final = Outcome.objects.get(pk=outcome.pk)
    assert final.status == OutcomeStatus.FINAL
    [entry] = billed(outcome)
    assert entry.delta_micros == -PRICE
    assert entry.metadata["outcome_id"] == outcome.pk
    assert final.ledger_entry_id == entry.pk
    assert balance_get(workspace_id=acme.pk).balance_micros == before - PRICE


def test_an_outcome_may_take_the_balance_below_zero(globex: Workspace) -> None:
    # given a price larger than whatever globex holds
    price = balance_get(workspace_id=globex.pk).balance_micros + 1_000_000
    outcome = record(globex, price=price)

    # when its window has passed
    outcomes_finalise(now=outcome.window_ends_at)

    # then it is billed all the same: the result was delivered and not disputed
    assert Outcome.objects.get(pk=outcome.pk).status == OutcomeStatus.FINAL
    assert balance_get(workspace_id=globex.pk).balance_micros == -1_000_000


def test_a_dispute_after_the_window_is_refused_with_the_date_it_closed(
    acme: Workspace, owner: User
) -> None:
    with time_machine.travel(T0, tick=False):
        outcome = record(acme)
    closed = T0 + timedelta(days=settings.OUTCOME_DISPUTE_WINDOW_DAYS)

    with (
        time_machine.travel(closed + timedelta(minutes=1), tick=False),
        pytest.raises(ApplicationError) as refused,
    ):
        outcome_dispute(outcome=outcome, membership=membership(acme, owner), reason="Late.")

    assert refused.value.message == (
        f"The dispute window for this outcome closed on {closed:%Y-%m-%d %H:%M} UTC; "
        "it can no longer be disputed."
    )
    assert Outcome.objects.get(pk=outcome.pk).status == OutcomeStatus.PENDING


def test_a_billed_outcome_cannot_be_disputed(acme: Workspace, owner: User) -> None:
    outcome = record(acme)
    outcomes_finalise(now=outcome.window_ends_at)

    with pytest.raises(ApplicationError, match="dispute window for this outcome closed"):
        outcome_dispute(outcome=outcome, membership=membership(acme, owner), reason="Late.")


def test_a_second_dispute_is_refused(acme: Workspace, owner: User) -> None:
    outcome = record(acme)
    outcome_dispute(outcome=outcome, membership=membership(acme, owner), reason="First.")

    with pytest.raises(ApplicationError, match="already disputed"):
        outcome_dispute(outcome=outcome, membership=membership(acme, owner), reason="Again.")

    assert Outcome.objects.get(pk=outcome.pk).dispute_reason == "First."


def test_a_dispute_needs_a_reason(acme: Workspace, owner: User) -> None:
    outcome = record(acme)

    with pytest.raises(ApplicationError, match="Say why") as refused:
        outcome_dispute(outcome=outcome, membership=membership(acme, owner), reason="   ")

    assert refused.value.field == "reason"
    assert Outcome.objects.get(pk=outcome.pk).status == OutcomeStatus.PENDING


def test_a_member_cannot_dispute(acme: Workspace, member: User) -> None:
    outcome = record(acme)

    with pytest.raises(PermissionDeniedError):
        outcome_dispute(outcome=outcome, membership=membership(acme, member), reason="Mine.")

    assert Outcome.objects.get(pk=outcome.pk).status == OutcomeStatus.PENDING


def test_an_owner_of_another_workspace_cannot_dispute(acme: Workspace, globex: Workspace) -> None:
    outcome = record(acme)
    globex_owner = User.objects.get(email="owner@globex.test")

    with pytest.raises(PermissionDeniedError):
        outcome_dispute(
            outcome=outcome, membership=membership(globex, globex_owner), reason="Not yours."
        )

    assert Outcome.objects.get(pk=outcome.pk).status == OutcomeStatus.PENDING


def test_concurrent_finalisers_bill_every_outcome_exactly_once() -> None:
    # given 40 committed outcomes past their window, in a workspace of their own
    tag = uuid.uuid4().hex[:8]
    due = timezone.now() - timedelta(minutes=1)

    def create() -> int:
        workspace = Workspace.objects.create(
            name="Race", slug=f"race-{tag}", schema_name=f"race_{tag}"
        )
        OutcomeFactory.create_batch(40, workspace=workspace, price_micros=1_000, window_ends_at=due)
        return workspace.pk

    workspace_id = run_committed(create)
    try:
        # when four finalisers start at the same moment, twice over
        start = threading.Barrier(4)

        def finalise(_: int) -> int:
            try:
                start.wait()
                return outcomes_finalise() + outcomes_finalise()
            finally:
                connections.close_all()

        with ThreadPoolExecutor(max_workers=4) as pool:
            counts = list(pool.map(finalise, range(4)))

        # then each outcome was billed once: 40 entries, 40 distinct keys, 40 credits
        def results() -> tuple[list[str], int, set[str]]:
            keys = list(
                LedgerEntry.objects.filter(workspace_id=workspace_id).values_list(
                    "idempotency_key", flat=True
                )
            )
            statuses = set(
                Outcome.objects.filter(workspace_id=workspace_id).values_list("status", flat=True)
            )
            return keys, balance_get(workspace_id=workspace_id).balance_micros, statuses

        keys, balance, statuses = run_committed(results)
        assert sum(counts) == 40
        assert len(keys) == len(set(keys)) == 40
        assert balance == -40_000
        assert statuses == {OutcomeStatus.FINAL}
    finally:
        run_committed(lambda: Workspace.objects.filter(pk=workspace_id).delete())
