"""The staff cost and latency dashboard at /admin/traces/dashboard/ (issue #8 item 3, #7 item 7).

Support, finance and superusers only (`can_read_call_costs`): it shows costs and counts, never
prompt content. Its numbers come from the rollup tables (apps/traces/rollup_selectors.py); the
charts are drawn by static/traces/dashboard.js from data passed with json_script.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.traces.models import LATENCY_BOUNDS_MS
from apps.traces.rollup_selectors import dashboard_get
from apps.workspaces.models import Workspace

from .permissions import can_read_call_costs

PERIODS = ((1, "Today (UTC)"), (7, "Last 7 days"), (30, "Last 30 days"), (90, "Last 90 days"))
DEFAULT_DAYS = 30


class DashboardFilter(forms.Form):
    days = forms.TypedChoiceField(label="period", choices=PERIODS, coerce=int, required=False)
    workspace = forms.CharField(label="workspace", required=False, max_length=63)

    def clean_workspace(self) -> Workspace | None:
        slug = self.cleaned_data["workspace"].strip()
        if not slug:
            return None
        workspace = Workspace.objects.filter(slug=slug).first()
        if workspace is None:
            raise forms.ValidationError(f"there is no workspace “{slug}”.")
        return workspace


def _filters(request: HttpRequest) -> tuple[int, Workspace | None]:
    """The period and workspace asked for; a malformed value is ignored with a message."""
    form = DashboardFilter(request.GET)
    form.is_valid()
    for name, errors in form.errors.items():
        messages.warning(
            request,
            f"Ignored the {form.fields[name].label} filter: {' '.join(map(str, errors))} "
            "Showing the default instead.",
        )
    return form.cleaned_data.get("days") or DEFAULT_DAYS, form.cleaned_data.get("workspace")


def dashboard_view(request: HttpRequest) -> HttpResponse:
    if not can_read_call_costs(request.user):
        raise PermissionDenied("The dashboard is for support, finance and superusers.")
    days, workspace = _filters(request)
    today = datetime.now(UTC).date()
    dashboard = dashboard_get(
        since=today - timedelta(days=days - 1),
        until=today + timedelta(days=1),
        workspace_id=workspace.pk if workspace else None,
    )
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Cost and latency",
        "dashboard": dashboard,
        "periods": PERIODS,
        "days": days,
        "workspace": workspace,
        "latency_bounds": LATENCY_BOUNDS_MS,
    }
    return render(request, "admin/traces/dashboard.html", context)


# Staff login first (the admin's redirect for anyone else), then the group check above.
traces_dashboard = admin.site.admin_view(dashboard_view)
