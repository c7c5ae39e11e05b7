"""Reads behind the staff cost and latency dashboard: the rollup tables only, never llm_call_log.

Day-level charts read the daily table (24x fewer rows than the hourly one); tokens per minute
reads the hourly one for periods up to a week (the average of each UTC hour), the daily one
beyond. Latency percentiles come from fixed histograms and are approximations, exact to the
bounds of the bucket they fall in.

Crosses workspaces by design (platform staff); `workspace_id` narrows every query to one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection
from django.db.models import F, Q, QuerySet, Sum

from apps.workspaces.models import Workspace

from .models import LATENCY_BOUNDS_MS, CallRollupDaily, CallRollupHourly
from .rollups import histogram_percentile

QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
STACKED_SERIES = 8  # the costliest series of a stacked chart; the rest is one "Other" series
MICROS = 1_000_000
HOURLY_DAYS = 7  # tokens per minute per hour up to this many days, per day beyond


@dataclass(frozen=True)
class LatencyRow:
    model: str
    calls: int
    mean_ms: float
    # quantile name → (estimate, lower bound, upper bound or None for the open-ended bucket)
    quantiles: dict[str, tuple[float, float, float | None]]


@dataclass(frozen=True)
class ProviderRow:
    provider: str
    calls: int
    errors: int
    cancelled: int
    truncated: int
    cache_hits: int
    fallbacks: int

    def rate(self, count: int) -> float:
        return count / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class Dashboard:
    since: date
    until: date  # exclusive
    totals: dict[str, Any]
    latency: list[LatencyRow]
    providers: list[ProviderRow]
    thumbs: list[tuple[str, int, int]]  # feature, up, down
    charts: dict[str, Any]  # JSON-ready, for the page's script


def _label(value: str) -> str:
    return value or "(none)"


def _daily(since: date, until: date, workspace_id: int | None) -> QuerySet[CallRollupDaily]:
    rows = CallRollupDaily.objects.filter(bucket__gte=since, bucket__lt=until)
    return rows.filter(workspace_id=workspace_id) if workspace_id else rows


def _stacked(
    rows: QuerySet[CallRollupDaily], field: str, days: list[date], names: dict[Any, str]
) -> list[dict[str, Any]]:
    """Cost per day and `field` value, as Chart.js datasets: the costliest few, then Other."""
    per_key: dict[Any, dict[date, int]] = defaultdict(dict)
    for row in rows.values("bucket", field).annotate(cost=Sum("cost_micros")).order_by():
        per_key[row[field]][row["bucket"]] = row["cost"]
    ranked = sorted(per_key, key=lambda k: -sum(per_key[k].values()))
    series = [(names.get(k, _label(k)), per_key[k]) for k in ranked[:STACKED_SERIES]]
    if rest := ranked[STACKED_SERIES:]:
        other: dict[date, int] = defaultdict(int)
        for key in rest:
            for day, cost in per_key[key].items():
                other[day] += cost
        series.append((f"Other ({len(rest)})", other))
    return [
        {"label": str(label), "data": [costs.get(day, 0) / MICROS for day in days]}
        for label, costs in series
    ]


def _latency(since: date, until: date, workspace_id: int | None) -> list[LatencyRow]:
    where = "bucket >= %s AND bucket < %s" + (" AND workspace_id = %s" if workspace_id else "")
    params: list[Any] = [since, until, *([workspace_id] if workspace_id else [])]
    table = CallRollupDaily._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT model, SUM(latency_ms_sum) FROM {table} WHERE {where} GROUP BY model",  # noqa: S608
            params,
        )
        sums = dict(cursor.fetchall())
        # Element-wise sum of the histograms per model: one row per (model, bucket).
        cursor.execute(
            f"SELECT r.model, u.i, SUM(u.n) FROM {table} r, "  # noqa: S608 - names are ours
            f"unnest(r.latency_histogram) WITH ORDINALITY AS u(n, i) WHERE {where} "
            "GROUP BY r.model, u.i",
            params,
        )
        histograms: dict[str, list[int]] = defaultdict(lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
        for model, index, count in cursor.fetchall():
            histograms[model][index - 1] = int(count)
    rows = []
    for model, histogram in histograms.items():
        calls = sum(histogram)
        if not calls:
            continue
        quantiles = {}
        for name, q in QUANTILES:
            estimate = histogram_percentile(histogram, q) or 0.0
            quantiles[name] = (estimate, *_bounds(estimate))
        rows.append(
            LatencyRow(_label(model), calls, float(sums.get(model) or 0) / calls, quantiles)
        )
    return sorted(rows, key=lambda r: -r.calls)


def _bounds(estimate: float) -> tuple[float, float | None]:
    """The histogram bucket an estimate was interpolated in."""
    lower = 0.0
    for bound in LATENCY_BOUNDS_MS:
        if estimate <= bound:
            return lower, float(bound)
        lower = float(bound)
    return lower, None


def _tokens_per_minute(since: date, until: date, workspace_id: int | None) -> dict[str, Any]:
    """Average tokens per minute of each UTC hour, or of each UTC day past HOURLY_DAYS days:
    720 hourly points would cost a scan of 24x more rows for a chart no wider than the page."""
    hourly = (until - since).days <= HOURLY_DAYS
    start = datetime.combine(since, time.min, tzinfo=UTC)
    end = datetime.combine(until, time.min, tzinfo=UTC)
    if hourly:
        rows: QuerySet[Any] = CallRollupHourly.objects.filter(bucket__gte=start, bucket__lt=end)
    else:
        rows = CallRollupDaily.objects.filter(bucket__gte=since, bucket__lt=until)
    if workspace_id:
        rows = rows.filter(workspace_id=workspace_id)
    tokens = dict(
        rows.values("bucket")
        .annotate(tokens=Sum(F("input_tokens") + F("output_tokens")))
        .order_by()
        .values_list("bucket", "tokens")
    )
    step, minutes = (timedelta(hours=1), 60) if hourly else (timedelta(days=1), 1440)
    now = datetime.now(UTC)
    labels, per_minute = [], []
    moment = start
    while moment < min(end, now):
        key = moment if hourly else moment.date()
        labels.append(moment.strftime("%Y-%m-%d %H:00" if hourly else "%Y-%m-%d"))
        per_minute.append(round((tokens.get(key) or 0) / minutes, 1))
        moment += step
    return {"resolution": "hour" if hourly else "day", "labels": labels, "per_minute": per_minute}


def dashboard_get(*, since: date, until: date, workspace_id: int | None = None) -> Dashboard:
    """Everything the dashboard shows for the UTC days [since, until), for all workspaces or
    one."""
    rows = _daily(since, until, workspace_id)
    days = [since + timedelta(days=n) for n in range((until - since).days)]
    totals = rows.aggregate(
        calls=Sum("calls"),
        errors=Sum("errors"),
        cache_hits=Sum("cache_hits"),
        fallbacks=Sum("fallbacks"),
        input_tokens=Sum("input_tokens"),
        output_tokens=Sum("output_tokens"),
        cost_micros=Sum("cost_micros"),
        thumbs_up=Sum("thumbs_up"),
        thumbs_down=Sum("thumbs_down"),
    )
    totals = {name: value or 0 for name, value in totals.items()}
    totals["cost_usd"] = totals["cost_micros"] / MICROS
    providers = [
        ProviderRow(
            provider=_label(r["provider"]),
            calls=r["calls"],
            errors=r["errors"],
            cancelled=r["cancelled"],
            truncated=r["truncated"],
            cache_hits=r["cache_hits"],
            fallbacks=r["fallbacks"],
        )
        for r in rows.values("provider")
        .annotate(
            calls=Sum("calls"),
            errors=Sum("errors"),
            cancelled=Sum("cancelled"),
            truncated=Sum("truncated"),
            cache_hits=Sum("cache_hits"),
            fallbacks=Sum("fallbacks"),
        )
        .order_by("-calls")
    ]
    thumbs = [
        (_label(r["feature"]), r["up"], r["down"])
        for r in rows.values("feature")
        .annotate(up=Sum("thumbs_up"), down=Sum("thumbs_down"))
        .filter(Q(up__gt=0) | Q(down__gt=0))
        .order_by("feature")
    ]
    workspace_ids = rows.values_list("workspace_id", flat=True).distinct().order_by()
    names = dict(Workspace.objects.filter(pk__in=workspace_ids).values_list("pk", "name"))
    latency = _latency(since, until, workspace_id)
    charts = {
        "days": [day.isoformat() for day in days],
        "cost": {
            "workspace": _stacked(rows, "workspace_id", days, names),
            "feature": _stacked(rows, "feature", days, {}),
            "model": _stacked(rows, "model", days, {}),
        },
        "latency": {
            "models": [r.model for r in latency],
            **{name: [round(r.quantiles[name][0], 1) for r in latency] for name, _ in QUANTILES},
        },
        "tokens": _tokens_per_minute(since, until, workspace_id),
        "providers": {
            "names": [p.provider for p in providers],
            "cache_hit_rate": [round(100 * p.rate(p.cache_hits), 2) for p in providers],
            "error_rate": [round(100 * p.rate(p.errors), 2) for p in providers],
            "fallback_rate": [round(100 * p.rate(p.fallbacks), 2) for p in providers],
        },
        "thumbs": {
            "features": [t[0] for t in thumbs],
            "up": [t[1] for t in thumbs],
            "down": [t[2] for t in thumbs],
        },
    }
    return Dashboard(since, until, totals, latency, providers, thumbs, charts)
