"""The trace changelist (support, superusers): filters, search by id or text, and the URLs of
a trace's pages (trace_pages.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, path
from django.utils import timezone

from apps.evals.admin import promote_traces
from apps.traces.models import LlmTrace

from ..permissions import can_read_trace_content
from .base import StaffReadOnly, identifier_q, parse_moment
from .filters import TRACE_FILTERS
from .trace_pages import trace_download, trace_page, trace_replay_page


@admin.register(LlmTrace)
class LlmTraceAdmin(StaffReadOnly):
    call_path, trace_path = "call__", ""
    list_display = (
        "created_at",
        "workspace",
        "call_feature",
        "call_alias",
        "call_model",
        "call_status",
        "actor",
        "flags",
        "score",
    )
    list_display_links = ("created_at",)
    list_select_related = ("call", "workspace")
    list_filter = TRACE_FILTERS
    search_fields = ("trace_id",)  # the search box; get_search_results does the searching
    search_help_text = (
        "A request id, trace id or call id; or words of the (masked) messages and answer, "
        f"searched within the date range, else the last {settings.TRACE_TEXT_SEARCH_DAYS} days."
    )
    ordering = ("-created_at",)
    actions = (promote_traces,)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_read_trace_content(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_read_trace_content(request.user)

    @admin.display(description="feature")
    def call_feature(self, trace: LlmTrace) -> str:
        return trace.call.feature

    @admin.display(description="alias")
    def call_alias(self, trace: LlmTrace) -> str:
        return trace.call.alias

    @admin.display(description="model")
    def call_model(self, trace: LlmTrace) -> str:
        return f"{trace.call.provider}/{trace.call.model}"

    @admin.display(description="status")
    def call_status(self, trace: LlmTrace) -> str:
        return trace.call.status

    @admin.display()
    def actor(self, trace: LlmTrace) -> str:
        return f"{trace.call.actor_type}:{trace.call.actor_id}"

    @admin.display()
    def flags(self, trace: LlmTrace) -> str:
        call = trace.call
        names = {"cached": call.cached, "fallback": call.fallback_used, "offline": call.offline}
        return ", ".join(name for name, on in names.items() if on)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[LlmTrace], search_term: str
    ) -> tuple[QuerySet[LlmTrace], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        ids = identifier_q(term, call_path="call__", trace_field="trace_id")
        if ids is not None and (found := queryset.filter(ids)).exists():
            return found, False
        # No trigram index: the scan is bounded by the date filter, else the last N days.
        if not parse_moment(request.GET.get("created_from", "")):
            since = timezone.now() - timedelta(days=settings.TRACE_TEXT_SEARCH_DAYS)
            queryset = queryset.filter(created_at__gte=since)
        text = queryset.annotate(_messages_text=Cast("messages", TextField()))
        return text.filter(Q(_messages_text__icontains=term) | Q(response__icontains=term)), False

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/download/",
                view(self.download_view),
                name="traces_llmtrace_download",
            ),
            path("<path:object_id>/raw/", view(self.raw_view), name="traces_llmtrace_raw"),
            path("<path:object_id>/replay/", view(self.replay_view), name="traces_llmtrace_replay"),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The trace page (audited as a view) instead of a read-only form."""
        return trace_page(self, request, object_id, raw=False)

    def raw_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The unmasked copy, on an explicit POST (audited as view_raw)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        return trace_page(self, request, object_id, raw=True)

    def download_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return trace_download(request, object_id)

    def replay_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return trace_replay_page(self, request, object_id)
