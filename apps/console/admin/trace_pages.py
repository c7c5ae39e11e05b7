"""The pages of one trace: the conversation (masked, or unmasked on request), the JSON
download and the replay with its diff. Each is audited by the service it calls
(apps/console/support.py, replay.py); service errors become 403 and 404 here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from apps.agents.selectors import audit_for_trace
from apps.billing.ledger import credits
from apps.common.errors import NotFoundError, PermissionDeniedError
from apps.traces.models import LlmCallLog

from ..replay import ReplayChoices, ReplayError, replay_choices, trace_replay
from ..support import trace_export, trace_for_staff, trace_view


@contextmanager
def _http_errors() -> Iterator[None]:
    """The services' refusals as Django's: 403 and 404 pages."""
    try:
        yield
    except PermissionDeniedError as exc:
        raise PermissionDenied(exc.message) from exc
    except NotFoundError as exc:
        raise Http404(exc.message) from exc


def trace_page(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str, *, raw: bool
) -> TemplateResponse:
    """The conversation of a trace; `raw` asks for the unmasked copy, and falls back to the
    masked page (with a warning) when there is none."""
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
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"Trace {page.trace.trace_id}",
        "page": page,
        "max_chars": settings.TRACE_DISPLAY_MAX_CHARS,
        "call_url": reverse("admin:traces_llmcalllog_change", args=[page.call.pk]),
        "tool_audits": audit_for_trace(
            schema=page.trace.workspace.schema_name, trace_id=page.trace.trace_id
        ),
    }
    return TemplateResponse(request, "admin/traces/trace_detail.html", context)


def trace_download(request: HttpRequest, object_id: str) -> HttpResponse:
    """The trace as a JSON attachment."""
    with _http_errors():
        exported = trace_export(user=request.user, pk=object_id)  # type: ignore[arg-type]
    response = JsonResponse(exported, json_dumps_params={"ensure_ascii": False, "indent": 1})
    response["Content-Disposition"] = f'attachment; filename="trace-{exported["trace_id"]}.json"'
    return response


def trace_replay_page(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str
) -> TemplateResponse:
    """The replay form; on a valid POST, the replay's answer beside the recorded one."""
    with _http_errors():
        trace = trace_for_staff(user=request.user, pk=object_id)  # type: ignore[arg-type]
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
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
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
