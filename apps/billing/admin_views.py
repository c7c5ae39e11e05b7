"""Finance pages inside Django admin (public host): the per-workspace overview of a period and
the ledger CSV export. Staff with the ledger's view permission (the `finance` group,
superusers) only; included before admin's own URLs under /admin/billing/."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import path

from .finance import COST_TO_REVENUE_FLAG, finance_overview, ledger_export_rows
from .forms import LedgerExportForm, PeriodForm, this_month

FINANCE_PERMISSION = "billing.view_ledgerentry"

View = Callable[[HttpRequest], HttpResponseBase]


def _finance_only(view: View) -> View:
    """Admin login for anyone, then 403 for staff without the ledger's view permission."""

    def checked(request: HttpRequest) -> HttpResponseBase:
        if not request.user.has_perm(FINANCE_PERMISSION):
            raise PermissionDenied("Finance pages are for the finance group.")
        return view(request)

    return admin.site.admin_view(checked)


def _context(request: HttpRequest, title: str) -> dict[str, object]:
    return {**admin.site.each_context(request), "title": title}


def finance_overview_view(request: HttpRequest) -> HttpResponse:
    form = PeriodForm(request.GET or None)
    # An unreadable period is reported on the form, and this month is shown meanwhile.
    valid = not form.is_bound or form.is_valid()
    start, end = form.period() if form.is_bound and valid else this_month()
    context = {
        **_context(request, "Finance overview"),
        "form": form,
        "overview": finance_overview(start=start, end=end),
        "flag_at": COST_TO_REVENUE_FLAG,
    }
    return render(request, "admin/billing/finance.html", context, status=200 if valid else 400)


class _Echo:
    """A file-like object whose write returns the line: csv.writer feeding a streaming response."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterable[tuple[object, ...]]) -> Iterable[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


def ledger_export_view(request: HttpRequest) -> HttpResponseBase:
    form = LedgerExportForm(request.GET or None)
    if not form.is_bound or not form.is_valid():
        status = 400 if form.is_bound else 200
        context = {**_context(request, "Export the ledger (CSV)"), "form": form}
        return render(request, "admin/billing/ledger_export.html", context, status=status)
    start, end = form.period()
    workspace = form.cleaned_data["workspace"]
    name = f"ledger-{form.cleaned_data['start']}-{form.cleaned_data['end']}"
    if workspace is not None:
        name += f"-{workspace.slug}"
    response = StreamingHttpResponse(
        _csv_lines(ledger_export_rows(start=start, end=end, workspace=workspace)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


urlpatterns = [
    path("finance/", _finance_only(finance_overview_view), name="billing_finance"),
    path("ledger-export/", _finance_only(ledger_export_view), name="billing_ledger_export"),
]
