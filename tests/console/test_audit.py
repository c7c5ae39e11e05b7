"""Permissions and audit of the trace admin: support reads, downloads, unmasks and replays —
each writing one TraceAccess row; finance sees costs but gets 403 on any content; other staff and
workspace members see nothing; the audit itself is read-only and for superusers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group

from apps.console.replay import platform_workspace
from apps.traces.models import LlmTrace, LlmTraceRaw, TraceAccess
from apps.workspaces.models import User, Workspace
from tests.console.admin_support import (
    admin_client,
    admin_url,
    finance,
    make_trace,
    staff_user,
    superuser,
    support,
)
from tests.gateway_support import forget_redis_keys, gateway_settings, unique

pytestmark = pytest.mark.django_db
__all__ = ["finance", "superuser", "support"]  # fixtures

CONTENT_URLS = ("traces_llmtrace_change", "traces_llmtrace_download", "traces_llmtrace_replay")


@pytest.fixture(autouse=True)
def _offline_glue() -> Iterator[None]:
    with gateway_settings():
        yield


def _with_raw(trace: LlmTrace) -> LlmTrace:
    LlmTraceRaw.objects.create(
        trace=trace,
        workspace=trace.workspace,
        messages=[{"role": "user", "content": "Call +1 415 555 0123"}],
        response="Sure.",
        created_at=trace.created_at,
    )
    return trace


def _rows(trace: LlmTrace) -> list[tuple[str, str]]:
    return list(
        TraceAccess.objects.filter(trace_id=trace.trace_id)
        .order_by("created_at", "pk")
        .values_list("action", "user_email")
    )


def test_each_view_download_unmasking_and_replay_writes_one_audit_row(
    support: User, acme: Workspace, settings: Any
) -> None:
    settings.PLATFORM_WORKSPACE = f"platform-{uuid.uuid4().hex[:8]}"
    trace = _with_raw(make_trace(acme, messages=[{"role": "user", "content": unique("Hi")}]))
    client = admin_client(support)
    try:
        assert client.get(admin_url("traces_llmtrace_change", trace.pk)).status_code == 200
        assert client.get(admin_url("traces_llmtrace_download", trace.pk)).status_code == 200
        assert client.post(admin_url("traces_llmtrace_raw", trace.pk)).status_code == 200
        assert client.post(admin_url("traces_llmtrace_replay", trace.pk)).status_code == 200
    finally:
        forget_redis_keys(f"*{platform_workspace().schema_name}*")

    assert _rows(trace) == [
        ("view", support.email),
        ("download", support.email),
        ("view_raw", support.email),
        ("replay", support.email),
    ]
    rows = TraceAccess.objects.filter(trace_id=trace.trace_id)
    assert {(row.user_id, row.workspace_id) for row in rows} == {(support.pk, acme.pk)}
    replay = rows.get(action="replay")
    assert uuid.UUID(replay.detail["new_trace_id"])
    assert replay.detail["used_raw"] is True


def test_the_replay_form_and_the_list_are_not_audited_as_trace_views(
    support: User, acme: Workspace
) -> None:
    trace = make_trace(acme)
    client = admin_client(support)

    client.get("/admin/traces/llmtrace/")
    client.get(admin_url("traces_llmtrace_replay", trace.pk))

    assert _rows(trace) == []


@pytest.mark.parametrize("name", CONTENT_URLS)
def test_finance_gets_403_on_trace_content_and_leaves_no_audit_row(
    finance: User, acme: Workspace, name: str
) -> None:
    trace = _with_raw(make_trace(acme))
    client = admin_client(finance)

    assert client.get(admin_url(name, trace.pk)).status_code == 403
    assert client.post(admin_url("traces_llmtrace_raw", trace.pk)).status_code == 403
    assert client.post(admin_url("traces_llmtrace_replay", trace.pk)).status_code == 403
    assert _rows(trace) == []


def test_finance_sees_the_call_log_but_not_the_trace_list(finance: User, acme: Workspace) -> None:
    make_trace(acme)
    client = admin_client(finance)

    index = client.get("/admin/").content.decode()

    assert "/admin/traces/llmcalllog/" in index
    assert "/admin/traces/llmtrace/" not in index
    assert "/admin/traces/traceaccess/" not in index
    assert client.get("/admin/traces/llmcalllog/").status_code == 200
    assert client.get("/admin/traces/llmtrace/").status_code == 403


def test_staff_outside_the_groups_and_workspace_members_see_no_trace(
    acme: Workspace, owner: User
) -> None:
    trace = make_trace(acme)
    plain_staff = staff_user(None)

    for name in CONTENT_URLS:
        assert admin_client(plain_staff).get(admin_url(name, trace.pk)).status_code == 403
        # a workspace owner is no platform staff: sent to the admin login
        response = admin_client(owner).get(admin_url(name, trace.pk))
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]
    assert admin_client(plain_staff).get("/admin/traces/llmcalllog/").status_code == 403
    assert _rows(trace) == []


def test_the_audit_is_read_only_and_for_superusers(
    superuser: User, support: User, acme: Workspace
) -> None:
    trace = make_trace(acme)
    admin_client(support).get(admin_url("traces_llmtrace_change", trace.pk))
    access = TraceAccess.objects.get(trace_id=trace.trace_id)

    listed = admin_client(superuser).get("/admin/traces/traceaccess/", {"q": str(trace.trace_id)})

    assert [row.pk for row in listed.context["cl"].result_list] == [access.pk]
    assert admin_client(support).get("/admin/traces/traceaccess/").status_code == 403
    change = admin_url("traces_traceaccess_change", access.pk)
    assert admin_client(superuser).post(change, {"action": "replay"}).status_code == 403
    delete = admin_url("traces_traceaccess_delete", access.pk)
    assert admin_client(superuser).post(delete, {"post": "yes"}).status_code == 403
    assert TraceAccess.objects.get(pk=access.pk).action == "view"


def test_the_staff_groups_hold_the_model_view_permissions() -> None:
    support_perms = set(
        Group.objects.get(name="support").permissions.values_list("codename", flat=True)
    )
    finance_perms = set(
        Group.objects.get(name="finance").permissions.values_list("codename", flat=True)
    )

    assert {"view_llmtrace", "view_llmcalllog", "view_llmtraceraw"} <= support_perms
    assert "view_llmcalllog" in finance_perms
    assert not {"view_llmtrace", "view_llmtraceraw"} & finance_perms
