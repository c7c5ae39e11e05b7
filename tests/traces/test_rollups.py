"""Rollups: kept equal to a direct aggregation of llm_call_log as batches are stored (and to a
rebuild from it), never counting a replayed batch twice, with thumbs following feedback."""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from datetime import UTC, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_tenants.utils import schema_context

from apps.agents.chat.services import conversation_create, feedback_set
from apps.traces.models import (
    LATENCY_BOUNDS_MS,
    LATENCY_BUCKETS,
    CallRollupDaily,
    CallRollupHourly,
    LlmCallLog,
    LlmTrace,
)
from apps.traces.rollups import (
    COUNTER_COLUMNS,
    histogram_percentile,
    latency_bucket,
    rollups_rebuild,
    trace_score_set,
)
from apps.traces.services import call_records_flush
from apps.workspaces.models import User, Workspace
from tests.factories import MessageFactory
from tests.traces.rollup_support import CallRecordFactory, queue

pytestmark = pytest.mark.django_db

Table = dict[tuple[Any, ...], dict[str, Any]]


def _prefix() -> str:
    """A feature prefix of this test only: rollups are compared on its rows alone."""
    return f"t{uuid.uuid4().hex[:8]}."


def _records(workspaces: list[Workspace], prefix: str, count: int) -> list[Any]:
    rng = random.Random(count)
    return [
        CallRecordFactory.build(
            workspace_id=(ws := rng.choice(workspaces)).pk,
            schema=ws.schema_name,
            feature=prefix + rng.choice(("chat", "rag", "agents")),
        )
        for _ in range(count)
    ]


def _direct(prefix: str, *, daily: bool) -> Table:
    """The rollup computed straight from llm_call_log + llm_trace, in Python."""
    table: Table = defaultdict(
        lambda: {**dict.fromkeys(COUNTER_COLUMNS, 0), "latency_histogram": [0] * LATENCY_BUCKETS}
    )
    scores = dict(
        LlmTrace.objects.filter(call__feature__startswith=prefix).values_list("call_id", "score")
    )
    for call in LlmCallLog.objects.filter(feature__startswith=prefix):
        at = call.created_at.astimezone(UTC)
        bucket = at.date() if daily else at.replace(minute=0, second=0, microsecond=0)
        row = table[
            (bucket, call.workspace_id, call.feature, call.alias, call.provider, call.model)
        ]
        row["calls"] += 1
        row["errors"] += call.status == "error"
        row["cancelled"] += call.status == "cancelled"
        row["truncated"] += call.status == "truncated"
        row["cache_hits"] += call.cached
        row["fallbacks"] += call.fallback_used
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            row[name] += getattr(call, name)
        row["cost_micros"] += call.cost_micros
        score = scores.get(call.pk)
        row["thumbs_up"] += score is not None and score > 0
        row["thumbs_down"] += score is not None and score < 0
        if not call.cached:
            row["latency_ms_sum"] += call.duration_ms
            row["latency_histogram"][latency_bucket(call.duration_ms)] += 1
    return dict(table)


def _stored(prefix: str, *, daily: bool) -> Table:
    model = CallRollupDaily if daily else CallRollupHourly
    table: Table = {}
    rows: list[dict[str, Any]] = [
        dict(row) for row in model.objects.filter(feature__startswith=prefix).values()
    ]
    for row in rows:
        key = tuple(
            row[k] for k in ("bucket", "workspace_id", "feature", "alias", "provider", "model")
        )
        table[key] = {k: row[k] for k in (*COUNTER_COLUMNS, "latency_histogram")}
    return table


def _assert_equal(actual: Table, expected: Table) -> None:
    assert actual.keys() == expected.keys()
    for key, row in expected.items():
        got = actual[key]
        assert got["latency_ms_sum"] == pytest.approx(row["latency_ms_sum"])
        assert {k: v for k, v in got.items() if k != "latency_ms_sum"} == {
            k: v for k, v in row.items() if k != "latency_ms_sum"
        }, key


def test_incremental_rollups_equal_the_call_log_and_a_rebuild(
    acme: Workspace, globex: Workspace
) -> None:
    # given 300 random calls of two workspaces over three days, stored in uneven batches,
    # some of them rated
    prefix = _prefix()
    call_records_flush()  # records earlier tests left in the shared queue
    queue(_records([acme, globex], prefix, 300))
    assert call_records_flush(batch=37) == 300
    traces = list(LlmTrace.objects.filter(call__feature__startswith=prefix)[:40])
    for i, trace in enumerate(traces):
        trace_score_set(trace_id=trace.trace_id, score=1 if i % 3 else -1)

    # then both tables equal the aggregation of the call log
    for daily in (False, True):
        _assert_equal(_stored(prefix, daily=daily), _direct(prefix, daily=daily))
    incremental = (_stored(prefix, daily=False), _stored(prefix, daily=True))

    # when they are rebuilt from the call log, nothing changes
    days = LlmCallLog.objects.filter(feature__startswith=prefix).values_list(
        "created_at", flat=True
    )
    since = min(days).astimezone(UTC).date()
    until = max(days).astimezone(UTC).date() + timedelta(days=1)
    assert rollups_rebuild(since=since, until=until) >= 300
    for daily, before in zip((False, True), incremental, strict=True):
        _assert_equal(_stored(prefix, daily=daily), before)


def test_a_replayed_batch_counts_once(acme: Workspace) -> None:
    prefix = _prefix()
    records = _records([acme], prefix, 20)
    queue(records)
    call_records_flush()
    before = _stored(prefix, daily=True)

    # when the same batch arrives again (a flusher crashed after its commit)
    queue(records)
    stored = call_records_flush()

    assert stored == 0
    assert _stored(prefix, daily=True) == before
    assert sum(row["calls"] for row in before.values()) == 20


def _thumbs(prefix: str) -> list[tuple[int, int]]:
    return [
        (
            sum(r["thumbs_up"] for r in _stored(prefix, daily=daily).values()),
            sum(r["thumbs_down"] for r in _stored(prefix, daily=daily).values()),
        )
        for daily in (False, True)
    ]


def test_feedback_moves_the_thumbs_counts(acme: Workspace, member: User) -> None:
    # given an answer whose call was stored
    prefix = _prefix()
    [record] = _records([acme], prefix, 1)
    queue([record])
    call_records_flush()
    with schema_context(acme.schema_name):
        conversation = conversation_create(user=member)
        answer = MessageFactory.create(
            conversation=conversation, trace_id=uuid.UUID(record.trace_id)
        )

        # when the member rates it up, twice, then changes their mind
        feedback_set(message=answer, user=member, rating=1)
        after_up = _thumbs(prefix)
        feedback_set(message=answer, user=member, rating=1, comment="really")
        after_repeat = _thumbs(prefix)
        feedback_set(message=answer, user=member, rating=-1)
        after_down = _thumbs(prefix)

    assert after_up == after_repeat == [(1, 0), (1, 0)]
    assert after_down == [(0, 1), (0, 1)]
    assert LlmTrace.objects.get(trace_id=record.trace_id).score == -1


def test_scoring_a_missing_trace_changes_nothing() -> None:
    assert trace_score_set(trace_id=uuid.uuid4(), score=1) is False


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_a_histogram_percentile_lies_within_the_bounds_of_the_true_value(q: float) -> None:
    rng = random.Random(q)
    durations = sorted(rng.lognormvariate(6.5, 1.4) for _ in range(5_000))
    histogram = [0] * LATENCY_BUCKETS
    for d in durations:
        histogram[latency_bucket(d)] += 1

    estimate = histogram_percentile(histogram, q)

    true = durations[math.ceil(q * len(durations)) - 1]
    bucket = latency_bucket(true)
    lower = LATENCY_BOUNDS_MS[bucket - 1] if bucket else 0
    upper = LATENCY_BOUNDS_MS[bucket] if bucket < len(LATENCY_BOUNDS_MS) else math.inf
    assert estimate is not None
    assert lower <= estimate <= upper


def test_an_empty_histogram_has_no_percentile() -> None:
    assert histogram_percentile([0] * LATENCY_BUCKETS, 0.5) is None


def test_the_rebuild_command_reports_what_it_counted(acme: Workspace) -> None:
    prefix = _prefix()
    queue(_records([acme], prefix, 10))
    call_records_flush()
    out = StringIO()

    call_command("traces_rollups", "rebuild", "--since", "2000-01-01", stdout=out)

    assert "Rebuilt rollups for 2000-01-01" in out.getvalue()
    assert sum(r["calls"] for r in _stored(prefix, daily=True).values()) == 10


def test_the_rebuild_command_checks_its_dates() -> None:
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("traces_rollups", "rebuild", "--since", "yesterday")
    with pytest.raises(CommandError, match="before"):
        call_command("traces_rollups", "rebuild", "--since", "2026-02-02", "--until", "2026-02-01")
