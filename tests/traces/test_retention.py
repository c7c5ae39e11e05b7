"""Retention tiers with frozen time: raw content goes after the plan's raw days, the masked trace
and eval candidates after its masked days, the call log stays; legal hold suspends everything."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import factory
import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client

from apps.billing.models import Plan
from apps.evals.models import EvalCandidate
from apps.traces.models import LlmCallLog, LlmTrace, LlmTraceRaw
from apps.traces.retention import RetentionCounts, all_workspaces_retention_apply
from apps.traces.tasks import apply_retention
from apps.workspaces.models import User, Workspace
from tests.conftest import host_client
from tests.factories import LlmCallLogFactory, LlmTraceFactory, UserFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class RawFactory(factory.django.DjangoModelFactory[LlmTraceRaw]):
    class Meta:
        model = LlmTraceRaw

    trace = factory.SubFactory(LlmTraceFactory, workspace=factory.SelfAttribute("..workspace"))
    messages = factory.LazyFunction(lambda: [{"role": "user", "content": "Mail jane@example.com"}])
    response = "Noted."
    created_at = factory.SelfAttribute("trace.created_at")


def stored_call(workspace: Workspace, at: datetime = T0) -> LlmTraceRaw:
    """One call as the flush stores it: call log, masked trace, raw copy, eval candidate."""
    call = LlmCallLogFactory.create(workspace=workspace, created_at=at)
    raw = RawFactory.create(workspace=workspace, trace__call=call, trace__created_at=at)
    EvalCandidate.objects.create(
        trace_id=call.trace_id,
        workspace=workspace,
        feature=call.feature,
        alias=call.alias,
        messages=raw.trace.messages,
        response=raw.trace.response,
        created_at=at,
    )
    return raw


@pytest.fixture(autouse=True)
def _only_this_tests_rows() -> None:
    """Earlier tests leave committed calls of acme and globex; inside this test's transaction
    (rolled back afterwards) they go, so counts and sweeps see this test's rows only."""
    EvalCandidate.objects.all().delete()
    LlmCallLog.objects.all().delete()  # cascades to traces and their raw copies


def counts_of(results: list[RetentionCounts], workspace: Workspace) -> RetentionCounts:
    return next(c for c in results if c.workspace == workspace.slug)


def rows(workspace: Workspace) -> dict[str, int]:
    return {
        "calls": LlmCallLog.objects.filter(workspace=workspace).count(),
        "traces": LlmTrace.objects.filter(workspace=workspace).count(),
        "raw": LlmTraceRaw.objects.filter(workspace=workspace).count(),
        "candidates": EvalCandidate.objects.filter(workspace=workspace).count(),
    }


def apply_at(moment: datetime) -> list[RetentionCounts]:
    with time_machine.travel(moment, tick=False):
        return all_workspaces_retention_apply()


def test_raw_goes_after_7_days_the_masked_copy_after_30_the_call_log_stays(
    acme: Workspace,
) -> None:
    # given one stored call on the free plan (7 raw days, 30 masked days)
    stored_call(acme)
    assert acme.plan == "free"

    # when retention runs 6 days later, then nothing is due
    counts = counts_of(apply_at(T0 + timedelta(days=6, hours=23)), acme)
    assert (counts.raw_deleted, counts.traces_deleted, counts.copies_deleted["candidates"]) == (
        0,
        0,
        0,
    )
    assert rows(acme) == {"calls": 1, "traces": 1, "raw": 1, "candidates": 1}

    # when it runs after 7 days, then the raw copy is gone
    counts = counts_of(apply_at(T0 + timedelta(days=7, minutes=1)), acme)
    assert (counts.raw_deleted, counts.traces_deleted, counts.copies_deleted["candidates"]) == (
        1,
        0,
        0,
    )
    assert rows(acme) == {"calls": 1, "traces": 1, "raw": 0, "candidates": 1}

    # when it runs after 30 days, then the masked trace and the candidate are gone too
    counts = counts_of(apply_at(T0 + timedelta(days=30, minutes=1)), acme)
    assert (counts.raw_deleted, counts.traces_deleted, counts.copies_deleted["candidates"]) == (
        0,
        1,
        1,
    )
    assert rows(acme) == {"calls": 1, "traces": 0, "raw": 0, "candidates": 0}
    # and the call log keeps its metadata and cost
    assert LlmCallLog.objects.get(workspace=acme).cost_micros == 1234


def test_a_trace_past_both_tiers_is_counted_once_and_takes_its_raw_copy(acme: Workspace) -> None:
    stored_call(acme)

    counts = counts_of(apply_at(T0 + timedelta(days=40)), acme)

    assert (counts.raw_deleted, counts.traces_deleted, counts.copies_deleted["candidates"]) == (
        0,
        1,
        1,
    )
    assert rows(acme) == {"calls": 1, "traces": 0, "raw": 0, "candidates": 0}


def test_the_plan_row_sets_the_days(acme: Workspace) -> None:
    # given acme on pro, whose plan row keeps raw content 1 day and masked copies 3
    Plan.objects.filter(code="pro").update(raw_retention_days=1, masked_retention_days=3)
    Workspace.objects.filter(pk=acme.pk).update(plan="pro")
    stored_call(acme)

    counts = counts_of(apply_at(T0 + timedelta(days=2)), acme)
    assert (counts.plan, counts.raw_days, counts.masked_days) == ("pro", 1, 3)
    assert rows(acme) == {"calls": 1, "traces": 1, "raw": 0, "candidates": 1}

    apply_at(T0 + timedelta(days=4))
    assert rows(acme) == {"calls": 1, "traces": 0, "raw": 0, "candidates": 0}


def test_an_unknown_plan_gets_the_free_plans_days(acme: Workspace) -> None:
    Plan.objects.filter(code="free").update(raw_retention_days=2, masked_retention_days=5)
    Workspace.objects.filter(pk=acme.pk).update(plan="legacy")

    counts = counts_of(apply_at(T0), acme)

    assert (counts.plan, counts.raw_days, counts.masked_days) == ("legacy", 2, 5)


def test_legal_hold_suspends_everything_and_only_for_its_workspace(
    acme: Workspace, globex: Workspace
) -> None:
    # given old calls in both workspaces, and acme under legal hold
    stored_call(acme)
    stored_call(globex)
    Workspace.objects.filter(pk=acme.pk).update(legal_hold=True)

    # when retention runs long after every tier
    results = apply_at(T0 + timedelta(days=365))

    # then acme keeps everything, globex's content goes
    held = counts_of(results, acme)
    assert held.legal_hold is True
    assert (held.raw_deleted, held.traces_deleted, held.copies_deleted["candidates"]) == (0, 0, 0)
    assert rows(acme) == {"calls": 1, "traces": 1, "raw": 1, "candidates": 1}
    assert rows(globex) == {"calls": 1, "traces": 0, "raw": 0, "candidates": 0}


def test_other_workspaces_recent_content_is_untouched(acme: Workspace, globex: Workspace) -> None:
    stored_call(acme)
    stored_call(globex, at=T0 + timedelta(days=29))

    results = apply_at(T0 + timedelta(days=31))

    assert counts_of(results, acme).traces_deleted == 1
    theirs = counts_of(results, globex)
    assert (theirs.raw_deleted, theirs.traces_deleted, theirs.copies_deleted["candidates"]) == (
        0,
        0,
        0,
    )
    assert rows(globex) == {"calls": 1, "traces": 1, "raw": 1, "candidates": 1}


def test_deletes_run_in_chunks_and_count_every_row(acme: Workspace) -> None:
    for hour in range(7):
        stored_call(acme, at=T0 + timedelta(hours=hour))

    with time_machine.travel(T0 + timedelta(days=10), tick=False):
        counts = counts_of(all_workspaces_retention_apply(chunk=3), acme)

    assert counts.raw_deleted == 7
    assert rows(acme)["raw"] == 0


def test_a_dry_run_counts_and_deletes_nothing(acme: Workspace) -> None:
    stored_call(acme, at=T0)  # past both tiers at T0 + 31 days
    stored_call(acme, at=T0 + timedelta(days=20))  # past the raw tier only

    with time_machine.travel(T0 + timedelta(days=31), tick=False):
        dry = counts_of(all_workspaces_retention_apply(dry_run=True), acme)
        real = counts_of(all_workspaces_retention_apply(), acme)

    assert (dry.raw_deleted, dry.traces_deleted, dry.copies_deleted["candidates"]) == (1, 1, 1)
    assert dry == real


def test_the_beat_task_returns_how_many_rows_went(acme: Workspace) -> None:
    stored_call(acme)

    with time_machine.travel(T0 + timedelta(days=31), tick=False):
        deleted = apply_retention()

    assert deleted == 2  # the masked trace (its raw copy with it) and the candidate
    assert rows(acme)["calls"] == 1


def test_the_command_reports_counts_as_json_and_text(acme: Workspace) -> None:
    stored_call(acme)
    out = StringIO()

    with time_machine.travel(T0 + timedelta(days=8), tick=False):
        call_command("traces", "retention", "--dry-run", "--json", stdout=out)
        report = json.loads(out.getvalue())
        text = StringIO()
        call_command("traces", "retention", stdout=text)

    assert report["dry_run"] is True
    ours = next(w for w in report["workspaces"] if w["workspace"] == "acme")
    assert (ours["raw_deleted"], ours["raw_days"]) == (1, 7)
    line = next(line for line in text.getvalue().splitlines() if line.startswith("acme "))
    assert "free       deleted        1 raw (>7d)" in line
    assert rows(acme)["raw"] == 0


def _admin(user: User) -> Client:
    return host_client("localhost", user)


def test_a_superuser_places_and_lifts_a_legal_hold_from_admin(acme: Workspace) -> None:
    boss = UserFactory.create(email="root@platform.test", is_staff=True, is_superuser=True)
    url = "/admin/workspaces/workspace/"

    response = _admin(boss).post(
        url, {"action": "place_legal_hold", "_selected_action": [acme.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "Placed a legal hold on 1 workspace(s)." in response.content.decode()
    acme.refresh_from_db()
    assert acme.legal_hold is True

    _admin(boss).post(url, {"action": "lift_legal_hold", "_selected_action": [acme.pk]})
    acme.refresh_from_db()
    assert acme.legal_hold is False


def test_staff_without_superuser_cannot_place_a_legal_hold(acme: Workspace) -> None:
    staff = UserFactory.create(email="support@platform.test", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_workspace", "change_workspace"])
    )
    url = "/admin/workspaces/workspace/"

    listing = _admin(staff).get(url)
    assert listing.status_code == 200
    assert "place_legal_hold" not in listing.content.decode()
    _admin(staff).post(url, {"action": "place_legal_hold", "_selected_action": [acme.pk]})
    acme.refresh_from_db()
    assert acme.legal_hold is False
