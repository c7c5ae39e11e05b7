"""The audit of staff access to traces (superusers only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.traces.models import TraceAccess

from .base import StaffReadOnly, parse_uuid


@admin.register(TraceAccess)
class TraceAccessAdmin(StaffReadOnly):
    """The audit of staff access to traces: superusers only (support must not read or curate
    the record of its own reading)."""

    list_display = ("created_at", "user_email", "action", "trace_id", "workspace", "detail")
    list_filter = ("action",)
    list_select_related = ("workspace",)
    search_fields = ("user_email",)
    search_help_text = "An email (contains) or a trace id."
    ordering = ("-created_at",)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[TraceAccess], search_term: str
    ) -> tuple[QuerySet[TraceAccess], bool]:
        if (found := parse_uuid(search_term)) is not None:
            return queryset.filter(trace_id=found), False
        return super().get_search_results(request, queryset, search_term)
