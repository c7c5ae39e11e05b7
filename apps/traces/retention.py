"""Retention tiers (issue #8): raw content for the plan's raw days, the masked copy for its masked
days, call-log metadata and cost forever.

Per workspace, from the billing Plan whose code is the workspace's plan (an unknown code gets
the free plan's values, or the model defaults if even that row is missing):
- llm_trace_raw rows older than `raw_retention_days` are deleted;
- llm_trace rows older than `masked_retention_days` are deleted (their raw row goes with them),
  and so are eval candidates, which are masked copies of the same content. The llm_call_log
  row stays: dashboards, finance and the ledger keep working on metadata and cost.
- a workspace under legal hold is skipped entirely.

Deletes run in chunks of primary keys, each its own statement, so a backlog of millions never
holds one long transaction or lock. Crosses workspaces by design (beat, operators).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.db.models import Model, QuerySet
from django.utils import timezone

from apps.billing.models import Plan
from apps.workspaces.models import Workspace

from .models import LlmTrace, LlmTraceRaw
from .ports import masked_copies

log = structlog.get_logger(__name__)

CHUNK = 5_000
FALLBACK_PLAN = "free"


@dataclass(frozen=True, slots=True)
class RetentionCounts:
    """What retention did (or, in a dry run, would do) to one workspace."""

    workspace: str  # slug
    plan: str
    raw_days: int
    masked_days: int
    legal_hold: bool
    raw_deleted: int = 0
    traces_deleted: int = 0
    copies_deleted: dict[str, int] = field(default_factory=dict)  # per masked copy's name

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update({f"{name}_deleted": n for name, n in data.pop("copies_deleted").items()})
        return data

    @property
    def deleted(self) -> int:
        return self.raw_deleted + self.traces_deleted + sum(self.copies_deleted.values())


def _plan_days() -> tuple[dict[str, tuple[int, int]], tuple[int, int]]:
    """(days per plan code, the days for an unknown code)."""
    days = {
        code: (raw, masked)
        for code, raw, masked in Plan.objects.values_list(
            "code", "raw_retention_days", "masked_retention_days"
        )
    }
    raw_field = Plan._meta.get_field("raw_retention_days")
    masked_field = Plan._meta.get_field("masked_retention_days")
    defaults = (int(raw_field.get_default()), int(masked_field.get_default()))
    return days, days.get(FALLBACK_PLAN, defaults)


def _delete_older(rows: QuerySet[Any], *, before: datetime, dry_run: bool, chunk: int) -> int:
    """Delete `rows` created before `before`, `chunk` primary keys at a time; return how many."""
    old = rows.filter(created_at__lt=before)
    if dry_run:
        return old.count()
    deleted = 0
    while True:
        keys = list(old.values_list("pk", flat=True)[:chunk])
        if not keys:
            return deleted
        model: type[Model] = rows.model
        # Counted from the main table only: cascaded raw rows are not reported twice.
        _, per_model = model._default_manager.filter(pk__in=keys).delete()
        deleted += per_model.get(model._meta.label, 0)


def workspace_retention_apply(
    *,
    workspace: Workspace,
    raw_days: int,
    masked_days: int,
    now: datetime | None = None,
    dry_run: bool = False,
    chunk: int = CHUNK,
) -> RetentionCounts:
    """Apply one workspace's retention (nothing under legal hold); return the counts."""
    counts = RetentionCounts(
        workspace=workspace.slug,
        plan=workspace.plan,
        raw_days=raw_days,
        masked_days=masked_days,
        legal_hold=workspace.legal_hold,
        copies_deleted={copy.name: 0 for copy in masked_copies()},
    )
    if workspace.legal_hold:
        return counts
    now = now or timezone.now()
    options: dict[str, Any] = {"dry_run": dry_run, "chunk": chunk}
    masked_before = now - timedelta(days=masked_days)
    # Masked first: a trace past its masked days takes its raw row with it (cascade).
    traces = _delete_older(
        LlmTrace.objects.filter(workspace=workspace), before=masked_before, **options
    )
    raw = LlmTraceRaw.objects.filter(workspace=workspace)
    if dry_run:
        # Nothing was deleted: leave out the raw rows the cascade would already take.
        raw = raw.filter(trace__created_at__gte=masked_before)
    raw_deleted = _delete_older(raw, before=now - timedelta(days=raw_days), **options)
    copies = {
        copy.name: _delete_older(copy.rows(workspace), before=masked_before, **options)
        for copy in masked_copies()
    }
    return replace(counts, raw_deleted=raw_deleted, traces_deleted=traces, copies_deleted=copies)


def all_workspaces_retention_apply(
    *, now: datetime | None = None, dry_run: bool = False, chunk: int = CHUNK
) -> list[RetentionCounts]:
    """Apply every workspace's plan retention (beat, daily); return and log the counts."""
    now = now or timezone.now()
    by_plan, fallback = _plan_days()
    results: list[RetentionCounts] = []
    for workspace in Workspace.objects.tenants().order_by("pk"):
        raw_days, masked_days = by_plan.get(workspace.plan, fallback)
        counts = workspace_retention_apply(
            workspace=workspace,
            raw_days=raw_days,
            masked_days=masked_days,
            now=now,
            dry_run=dry_run,
            chunk=chunk,
        )
        results.append(counts)
        log.info("traces.retention", dry_run=dry_run, **counts.as_dict())
    return results
