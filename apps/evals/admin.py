"""Admin for support staff: eval candidates and traces → eval examples (JSONL), and eval runs.

Promoting downloads the selected examples as a .jsonl file; each line is reviewed and appended
to `prompts/<name>/eval.jsonl` in a pull request (which runs the evals).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from apps.traces.models import LlmTrace

from .dataset import EvalDataError
from .models import CandidateStatus, EvalCandidate, EvalResult, EvalRun
from .services import eval_candidate_promote, eval_trace_promote


def _download(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    items: QuerySet[Any],
    promote: Callable[[Any], str],
) -> HttpResponse | None:
    lines, skipped = [], []
    for item in items:
        try:
            lines.append(promote(item))
        except EvalDataError as exc:
            skipped.append(f"{item.trace_id}: {exc}")
    for reason in skipped:
        modeladmin.message_user(request, f"Not promoted — {reason}", messages.WARNING)
    if not lines:
        return None
    response = HttpResponse("\n".join(lines) + "\n", content_type="application/x-ndjson")
    response["Content-Disposition"] = 'attachment; filename="eval-examples.jsonl"'
    return response


@admin.action(description="Promote to eval examples (download JSONL)")
def promote_candidates(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[EvalCandidate]
) -> HttpResponse | None:
    return _download(modeladmin, request, queryset, lambda c: eval_candidate_promote(candidate=c))


@admin.action(description="Dismiss")
def dismiss_candidates(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[EvalCandidate]
) -> None:
    count = queryset.update(status=CandidateStatus.DISMISSED)
    modeladmin.message_user(request, f"{count} candidate(s) dismissed.")


@admin.action(description="Promote to eval examples (download JSONL)")
def promote_traces(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[LlmTrace]
) -> HttpResponse | None:
    """Listed by the traces admin (apps/console/admin/traces.py)."""
    return _download(modeladmin, request, queryset, lambda t: eval_trace_promote(trace=t))


@admin.register(EvalCandidate)
class EvalCandidateAdmin(admin.ModelAdmin):
    list_display = ("created_at", "prompt_name", "prompt_version", "feature", "model", "status")
    list_filter = ("status", "prompt_name", "feature")
    search_fields = ("trace_id", "prompt_name", "response")
    readonly_fields = [f.name for f in EvalCandidate._meta.fields]
    actions = (promote_candidates, dismiss_candidates)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class EvalResultInline(admin.TabularInline):
    model = EvalResult
    extra = 0
    can_delete = False
    fields = ("example_id", "score", "passed", "error", "cost_micros", "latency_ms", "output")
    readonly_fields = fields


@admin.register(EvalRun)
class EvalRunAdmin(admin.ModelAdmin):
    list_display = (
        "started_at",
        "prompt_name",
        "prompt_version",
        "alias",
        "model",
        "score",
        "passed",
        "examples",
        "cost_micros",
    )
    list_filter = ("prompt_name", "alias", "offline")
    readonly_fields = [f.name for f in EvalRun._meta.fields]
    inlines = (EvalResultInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
