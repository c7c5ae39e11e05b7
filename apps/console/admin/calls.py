"""The call-log changelist (support, finance, superusers): metadata and cost, never content."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.billing.ledger import credits
from apps.traces.models import LlmCallLog

from ..permissions import can_read_call_costs, can_read_trace_content
from .base import StaffReadOnly, identifier_q
from .filters import TRACE_FILTERS


@admin.register(LlmCallLog)
class LlmCallLogAdmin(StaffReadOnly):
    """Costs and metadata for finance and support; the trace link only for support."""

    call_path, trace_path = "", "trace__"
    list_display = (
        "created_at",
        "workspace",
        "feature",
        "alias",
        "provider",
        "model",
        "status",
        "input_tokens",
        "output_tokens",
        "cost_micros",
        "cost_credits",
        "duration_ms",
        "cached",
        "fallback_used",
    )
    list_select_related = ("workspace",)
    list_filter = TRACE_FILTERS
    search_fields = ("request_id",)
    search_help_text = "A request id, trace id or call id."
    ordering = ("-created_at",)
    readonly_fields = ("trace_link", "cost_credits")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_read_call_costs(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_read_call_costs(request.user)

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        shown = tuple(str(name) for name in self.list_display)
        return (*shown, "trace_link") if can_read_trace_content(request.user) else shown

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        shown = (*(f.name for f in LlmCallLog._meta.fields if f.name != "id"), "cost_credits")
        return (*shown, "trace_link") if can_read_trace_content(request.user) else shown

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[LlmCallLog], search_term: str
    ) -> tuple[QuerySet[LlmCallLog], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        ids = identifier_q(term, call_path="", trace_field="trace_id")
        if ids is None:
            messages.info(
                request, "The call log holds no content: search by request, trace or call id."
            )
            return queryset.none(), False
        return queryset.filter(ids), False

    def get_queryset(self, request: HttpRequest) -> QuerySet[LlmCallLog]:
        # The trace's primary key for the link, in the same query (no N+1).
        return super().get_queryset(request).annotate(_trace_pk=F("trace__pk"))

    @admin.display(description="credits")
    def cost_credits(self, call: LlmCallLog) -> str:
        return f"{credits(call.cost_micros):.3f}"

    @admin.display(description="trace")
    def trace_link(self, call: LlmCallLog) -> str:
        # Listed only for support (get_list_display, get_fields).
        trace_pk = getattr(call, "_trace_pk", None)
        if trace_pk is None:
            return "—"
        return format_html(
            '<a href="{}">open</a>', reverse("admin:traces_llmtrace_change", args=[trace_pk])
        )
