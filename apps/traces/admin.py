"""Trace search, trace pages, downloads and replay for platform staff (issue #8, items 1, 2, 6).

- LlmTrace (support, superusers): filters, search by id or text, a page per trace rendering the
  conversation, an audited JSON download, the unmasked copy on request, replay with a diff.
- LlmCallLog (support, finance, superusers): metadata and cost only, never content.
- TraceAccess (superusers): the read-only audit of who opened, downloaded or replayed what.

Views read the request, call one service (apps/traces/support.py, replay.py) and render.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from apps.billing.ledger import credits
from apps.common.admin import ReadOnlyAdmin
from apps.common.errors import NotFoundError, PermissionDeniedError
from apps.evals.admin import promote_traces

from .admin_filters import TRACE_FILTERS, parse_moment, parse_uuid
from .models import LlmCallLog, LlmTrace, TraceAccess
from .permissions import can_read_call_costs, can_read_trace_content
from .replay import ReplayChoices, ReplayError, replay_choices, trace_replay
from .support import trace_export, trace_for_staff, trace_view


def _identifier_q(term: str, *, call_path: str, trace_field: str) -> Q | None:
    """Rows whose request id, trace id or call id is `term` (all indexed), or None when `term`
    cannot be an id."""
    if not term or len(term) > 64 or any(ch.isspace() for ch in term):
        return None
    q = Q(**{f"{call_path}request_id": term})
    if (found := parse_uuid(term)) is not None:
        q |= Q(**{trace_field: found}) | Q(**{f"{call_path}call_id": found})
        q |= Q(**{f"{call_path}request_id": found.hex})
    return q


class _StaffReadOnly(ReadOnlyAdmin):
    """Rows written by the system, in big tables: staff read them page by page."""

    show_full_result_count = False  # no COUNT(*) over the whole table on every page
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50


@admin.register(LlmTrace)
class LlmTraceAdmin(_StaffReadOnly):
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
        ids = _identifier_q(term, call_path="call__", trace_field="trace_id")
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

    def _page(self, request: HttpRequest, object_id: str, *, raw: bool) -> TemplateResponse:
        try:
            page = trace_view(user=request.user, pk=object_id, raw=raw)  # type: ignore[arg-type]
        except PermissionDeniedError as exc:
            raise PermissionDenied(exc.message) from exc
        except NotFoundError as exc:
            if not raw:
                raise Http404(exc.message) from exc
            messages.warning(request, exc.message)
            page = trace_view(user=request.user, pk=object_id)  # type: ignore[arg-type]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Trace {page.trace.trace_id}",
            "page": page,
            "max_chars": settings.TRACE_DISPLAY_MAX_CHARS,
            "call_url": reverse("admin:traces_llmcalllog_change", args=[page.call.pk]),
        }
        return TemplateResponse(request, "admin/traces/trace_detail.html", context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The trace page (audited as a view) instead of a read-only form."""
        return self._page(request, object_id, raw=False)

    def raw_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The unmasked copy, on an explicit POST (audited as view_raw)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        return self._page(request, object_id, raw=True)

    def download_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        try:
            exported = trace_export(user=request.user, pk=object_id)  # type: ignore[arg-type]
        except PermissionDeniedError as exc:
            raise PermissionDenied(exc.message) from exc
        except NotFoundError as exc:
            raise Http404(exc.message) from exc
        response = JsonResponse(exported, json_dumps_params={"ensure_ascii": False, "indent": 1})
        response["Content-Disposition"] = (
            f'attachment; filename="trace-{exported["trace_id"]}.json"'
        )
        return response

    def replay_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        try:
            trace = trace_for_staff(user=request.user, pk=object_id)  # type: ignore[arg-type]
        except PermissionDeniedError as exc:
            raise PermissionDenied(exc.message) from exc
        except NotFoundError as exc:
            raise Http404(exc.message) from exc
        choices = replay_choices(trace=trace)
        posted = request.POST if request.method == "POST" else None
        form = ReplayForm(posted, choices=choices, recorded=trace.call)
        result = None
        if request.method == "POST" and form.is_valid():
            try:
                result = trace_replay(
                    user=request.user,  # type: ignore[arg-type]
                    trace=trace,
                    alias=form.cleaned_data["alias"] or None,
                    prompt_version=form.cleaned_data.get("prompt_version") or None,
                )
            except ReplayError as exc:
                if exc.field in form.fields:
                    form.add_error(exc.field, exc.message)
                else:
                    form.add_error(None, exc.message)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Replay trace {trace.trace_id}",
            "trace": trace,
            "choices": choices,
            "form": form,
            "result": result,
            "result_credits": credits(result.cost_micros) if result else None,
            "max_chars": settings.TRACE_DISPLAY_MAX_CHARS,
            "changelist_url": reverse("admin:traces_llmtrace_changelist"),
        }
        return TemplateResponse(request, "admin/traces/replay.html", context)


class ReplayForm(forms.Form):
    """Alias and prompt version of a replay. Values are checked by the replay service, which
    names the available choices when a recorded one is gone."""

    alias = forms.CharField(required=False, max_length=32)
    prompt_version = forms.CharField(required=False, max_length=32)

    def __init__(self, *args: Any, choices: ReplayChoices, recorded: LlmCallLog, **kwargs: Any):
        super().__init__(*args, **kwargs)
        as_recorded = f"as recorded ({recorded.alias})"
        self.fields["alias"].widget = forms.Select(
            choices=[("", as_recorded), *((a, a) for a in choices.aliases)]
        )
        if choices.prompt_name:
            unchanged = f"the recorded text ({recorded.prompt_version or 'unversioned'})"
            self.fields["prompt_version"].widget = forms.Select(
                choices=[("", unchanged), *((v, v) for v in choices.versions)]
            )
        else:
            del self.fields["prompt_version"]


@admin.register(LlmCallLog)
class LlmCallLogAdmin(_StaffReadOnly):
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
        ids = _identifier_q(term, call_path="", trace_field="trace_id")
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


@admin.register(TraceAccess)
class TraceAccessAdmin(_StaffReadOnly):
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
