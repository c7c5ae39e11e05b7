"""Rollup tables: llm_call_log aggregated per UTC hour and day, for the staff dashboards.

Maintained incrementally: `_store` adds each batch of freshly stored calls inside its own
transaction (a replayed batch stores nothing, so it adds nothing), and `trace_score_set` moves
the thumbs counts when a rating changes. `rollups_rebuild` recomputes a date range from the call
log in SQL, as a repair tool (after a bug, a bulk import, or changed histogram bounds).

Both tables cross workspaces by design (staff dashboards); every row carries `workspace_id`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from django.db import connection, transaction

from .models import (
    LATENCY_BOUNDS_MS,
    LATENCY_BUCKETS,
    CallRollupDaily,
    CallRollupHourly,
    CallStatus,
    LlmCallLog,
    LlmTrace,
)

KEY_COLUMNS = ("bucket", "workspace_id", "feature", "alias", "provider", "model")
COUNTER_COLUMNS = (
    "calls",
    "errors",
    "cancelled",
    "truncated",
    "cache_hits",
    "fallbacks",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_micros",
    "latency_ms_sum",
    "thumbs_up",
    "thumbs_down",
)
TABLES = (CallRollupHourly._meta.db_table, CallRollupDaily._meta.db_table)

Key = tuple[Any, int, str, str, str, str]


def latency_bucket(duration_ms: float) -> int:
    """The histogram bucket of a duration; the same rule as PostgreSQL's width_bucket()."""
    return bisect.bisect_right(LATENCY_BOUNDS_MS, duration_ms)


@dataclass
class _Totals:
    counters: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTER_COLUMNS, 0))
    histogram: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)

    def add(self, call: LlmCallLog, score: int | None) -> None:
        c = self.counters
        c["calls"] += 1
        c["errors"] += call.status == CallStatus.ERROR
        c["cancelled"] += call.status == CallStatus.CANCELLED
        c["truncated"] += call.status == CallStatus.TRUNCATED
        c["cache_hits"] += call.cached
        c["fallbacks"] += call.fallback_used
        c["input_tokens"] += call.input_tokens
        c["output_tokens"] += call.output_tokens
        c["cache_read_tokens"] += call.cache_read_tokens
        c["cache_write_tokens"] += call.cache_write_tokens
        c["cost_micros"] += call.cost_micros
        c["thumbs_up"] += score is not None and score > 0
        c["thumbs_down"] += score is not None and score < 0
        if not call.cached:
            c["latency_ms_sum"] += call.duration_ms
            self.histogram[latency_bucket(call.duration_ms)] += 1


def _keys(call: LlmCallLog) -> tuple[Key, Key]:
    hour = call.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    rest = (call.workspace_id, call.feature, call.alias, call.provider, call.model)
    return (hour, *rest), (hour.date(), *rest)


def rollups_add(*, pairs: Iterable[tuple[LlmCallLog, LlmTrace | None]]) -> None:
    """Add calls just stored (never counted before), with their traces' scores, to both
    rollup tables.

    Call inside the transaction that stores them, so the counts commit with the rows or not at
    all.
    """
    hourly: dict[Key, _Totals] = {}
    daily: dict[Key, _Totals] = {}
    for call, trace in pairs:
        score = trace.score if trace is not None else None
        hour_key, day_key = _keys(call)
        hourly.setdefault(hour_key, _Totals()).add(call, score)
        daily.setdefault(day_key, _Totals()).add(call, score)
    with connection.cursor() as cursor:
        for table, totals in zip(TABLES, (hourly, daily), strict=True):
            if totals:
                _upsert(cursor, table, totals)


def _upsert(cursor: Any, table: str, totals: dict[Key, _Totals]) -> None:
    # One array parameter per column (unnest), not a VALUES row per key: ~20 parameters
    # instead of thousands, which costs the driver and the server far less to parse.
    # Keys in one order: two flushers upserting overlapping keys lock rows in the same order
    # instead of deadlocking.
    ordered = sorted(totals.items(), key=lambda item: (str(item[0][0]), *item[0][1:]))
    bucket_type = "date" if table == CallRollupDaily._meta.db_table else "timestamptz"
    counter_types = ("float8" if n == "latency_ms_sum" else "bigint" for n in COUNTER_COLUMNS)
    types = (bucket_type, "bigint", "text", "text", "text", "text", *counter_types)
    columns = (*KEY_COLUMNS, *COUNTER_COLUMNS)
    params: list[Any] = [[n for _, total in ordered for n in total.histogram]]
    params += [[key[i] for key, _ in ordered] for i in range(len(KEY_COLUMNS))]
    for name in COUNTER_COLUMNS:
        kind = float if name == "latency_ms_sum" else int  # one type per array
        params.append([kind(total.counters[name]) for _, total in ordered])
    names = ", ".join(columns)
    updates = ", ".join(f"{name} = t.{name} + EXCLUDED.{name}" for name in COUNTER_COLUMNS)
    cursor.execute(
        f"INSERT INTO {table} AS t ({names}, latency_histogram) "  # noqa: S608 - names are ours
        f"SELECT {names}, (%s::bigint[])[(n - 1) * {LATENCY_BUCKETS} + 1 : n * {LATENCY_BUCKETS}] "
        f"FROM unnest({', '.join(f'%s::{t}[]' for t in types)}) WITH ORDINALITY AS u({names}, n) "
        f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET {updates}, "
        "latency_histogram = ARRAY(SELECT a + b FROM unnest(t.latency_histogram, "
        "EXCLUDED.latency_histogram) WITH ORDINALITY AS h(a, b, i) ORDER BY i)",
        params,
    )


def trace_score_set(*, trace_id: Any, score: int, comment: str = "") -> bool:
    """Set a trace's feedback score and move its call's thumbs count; False if no such trace.

    Idempotent: setting the same score again moves nothing. The trace row is locked, so two
    ratings of one answer racing each other count once.
    """
    with transaction.atomic():
        trace = (
            LlmTrace.objects.select_for_update(of=("self",))
            .select_related("call")
            .filter(trace_id=trace_id)
            .first()
        )
        if trace is None:
            return False
        before = _thumb(trace.score)
        trace.score, trace.score_comment = score, comment
        trace.save(update_fields=["score", "score_comment"])
        after = _thumb(score)
        if before != after:
            _thumbs_move(trace.call, before=before, after=after)
    return True


def _thumb(score: int | None) -> str | None:
    if score is None or score == 0:
        return None
    return "thumbs_up" if score > 0 else "thumbs_down"


def _thumbs_move(call: LlmCallLog, *, before: str | None, after: str | None) -> None:
    # Only rows that exist: a call older than the rollups has none, and `rollups_rebuild`
    # counts its score from the trace instead.
    changes = [f"{name} = {name} + {delta}" for name, delta in ((before, -1), (after, 1)) if name]
    where = " AND ".join(f"{name} = %s" for name in KEY_COLUMNS)
    with connection.cursor() as cursor:
        for table, key in zip(TABLES, _keys(call), strict=True):
            cursor.execute(
                f"UPDATE {table} SET {', '.join(changes)} WHERE {where}",  # noqa: S608
                list(key),
            )


def _histogram_sql() -> str:
    bounds = ", ".join(str(b) for b in LATENCY_BOUNDS_MS)
    counts = ", ".join(
        f"COUNT(*) FILTER (WHERE NOT c.cached AND width_bucket(c.duration_ms, "
        f"ARRAY[{bounds}]::float8[]) = {i})"
        for i in range(LATENCY_BUCKETS)
    )
    return f"ARRAY[{counts}]::bigint[]"


def _rebuild_sql(table: str, bucket: str) -> str:
    status = {s: s.value for s in CallStatus}
    return f"""
        INSERT INTO {table} ({", ".join((*KEY_COLUMNS, *COUNTER_COLUMNS, "latency_histogram"))})
        SELECT {bucket}, c.workspace_id, c.feature, c.alias, c.provider, c.model,
            COUNT(*),
            COUNT(*) FILTER (WHERE c.status = '{status[CallStatus.ERROR]}'),
            COUNT(*) FILTER (WHERE c.status = '{status[CallStatus.CANCELLED]}'),
            COUNT(*) FILTER (WHERE c.status = '{status[CallStatus.TRUNCATED]}'),
            COUNT(*) FILTER (WHERE c.cached),
            COUNT(*) FILTER (WHERE c.fallback_used),
            COALESCE(SUM(c.input_tokens), 0), COALESCE(SUM(c.output_tokens), 0),
            COALESCE(SUM(c.cache_read_tokens), 0), COALESCE(SUM(c.cache_write_tokens), 0),
            COALESCE(SUM(c.cost_micros), 0),
            COALESCE(SUM(c.duration_ms) FILTER (WHERE NOT c.cached), 0),
            COUNT(*) FILTER (WHERE tr.score > 0),
            COUNT(*) FILTER (WHERE tr.score < 0),
            {_histogram_sql()}
        FROM {LlmCallLog._meta.db_table} c
        LEFT JOIN {LlmTrace._meta.db_table} tr ON tr.call_id = c.id
        WHERE c.created_at >= %s AND c.created_at < %s
        GROUP BY 1, 2, 3, 4, 5, 6
    """  # noqa: S608 - table, column and status names are ours


def rollups_rebuild(*, since: date, until: date) -> int:
    """Recompute both rollup tables for the UTC days [since, until) from llm_call_log (the
    repair tool); return how many calls were aggregated.

    One transaction: the dashboards see the old numbers or the new ones, never a gap. Batches
    stored meanwhile wait on the table locks, so nothing is counted twice or lost.
    """
    if until <= since:
        return 0
    start = datetime.combine(since, time.min, tzinfo=UTC)
    end = datetime.combine(until, time.min, tzinfo=UTC)
    with transaction.atomic(), connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(
            f"DELETE FROM {CallRollupHourly._meta.db_table} WHERE bucket >= %s AND bucket < %s",  # noqa: S608
            [start, end],
        )
        cursor.execute(
            f"DELETE FROM {CallRollupDaily._meta.db_table} WHERE bucket >= %s AND bucket < %s",  # noqa: S608
            [since, until],
        )
        cursor.execute(
            _rebuild_sql(
                CallRollupHourly._meta.db_table,
                "date_trunc('hour', c.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
            ),
            [start, end],
        )
        cursor.execute(
            _rebuild_sql(CallRollupDaily._meta.db_table, "(c.created_at AT TIME ZONE 'UTC')::date"),
            [start, end],
        )
        cursor.execute(
            f"SELECT COALESCE(SUM(calls), 0) FROM {CallRollupDaily._meta.db_table} "  # noqa: S608
            "WHERE bucket >= %s AND bucket < %s",
            [since, until],
        )
        (calls,) = cursor.fetchone()
    return int(calls)


def histogram_percentile(histogram: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 < q ≤ 1) of the durations a histogram counts, interpolated linearly
    inside the bucket holding the nearest-rank value: an approximation, exact to the bucket's
    bounds. The open-ended last bucket answers its lower bound. None when it counts nothing."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            lower = float(LATENCY_BOUNDS_MS[index - 1]) if index else 0.0
            if index >= len(LATENCY_BOUNDS_MS):
                return lower
            upper = float(LATENCY_BOUNDS_MS[index])
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    raise AssertionError("unreachable: the ranks are counted")
