"""The trace admin: filters and search return the right rows (never another workspace's when
filtered), malformed filters are ignored with a message, the list runs a fixed number of
queries, and a trace page renders the whole conversation — cut to size, with a download."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.agents.models import Agent, Conversation
from apps.agents.models import Message as ChatMessage
from apps.agents.tools.registry import ToolContext
from apps.agents.tools.runner import tool_call
from apps.traces.models import LlmTrace, LlmTraceRaw
from apps.workspaces.models import User, Workspace
from apps.workspaces.selectors import membership_get
from tests.console.admin_support import (
    admin_client,
    admin_url,
    chat_trace,
    finance,
    make_trace,
    support,
)
from tests.gateway_support import ask, gateway_settings, unique

pytestmark = pytest.mark.django_db
__all__ = ["finance", "support"]  # fixtures

CHANGELIST = "/admin/traces/llmtrace/"


@pytest.fixture(autouse=True)
def _offline_glue() -> Iterator[None]:
    with gateway_settings():
        yield


def _listed(user: User, **params: Any) -> tuple[set[int], list[str]]:
    """The trace ids (pks) the changelist shows for `params`, and the page's messages."""
    response = admin_client(user).get(CHANGELIST, params)
    assert response.status_code == 200, response.status_code
    rows = {trace.pk for trace in response.context["cl"].result_list}
    return rows, [str(m) for m in get_messages(response.wsgi_request)]


def test_filtering_by_workspace_shows_nothing_of_another_workspace(
    support: User, acme: Workspace, globex: Workspace
) -> None:
    ours = make_trace(acme)
    theirs = make_trace(globex)

    rows, notes = _listed(support, workspace="acme")

    assert ours.pk in rows
    assert theirs.pk not in rows
    assert LlmTrace.objects.filter(pk__in=rows, workspace=globex).count() == 0
    assert notes == []
    # and by id as well as by slug
    assert _listed(support, workspace=str(globex.pk))[0] & {ours.pk, theirs.pk} == {theirs.pk}


@pytest.mark.parametrize(
    ("params", "matching", "other"),
    [
        ({"feature": "chat.title"}, {"feature": "chat.title"}, {"feature": "chat"}),
        ({"feature": "chat*"}, {"feature": "chat.title"}, {"feature": "rag.answer"}),
        ({"alias": "fast"}, {"alias": "fast"}, {"alias": "smart"}),
        ({"model": "claude-haiku-4-5"}, {"model": "claude-haiku-4-5"}, {}),
        ({"provider": "anthropic"}, {"provider": "anthropic"}, {"provider": "local"}),
        ({"status": "error"}, {"status": "error"}, {"status": "ok"}),
        ({"cached": "yes"}, {"cached": True}, {"cached": False}),
        ({"cached": "no"}, {"cached": False}, {"cached": True}),
        ({"fallback": "yes"}, {"fallback_used": True}, {}),
        ({"actor_type": "agent"}, {"actor_type": "agent"}, {"actor_type": "user"}),
        ({"actor_id": "4242"}, {"actor_id": "4242"}, {"actor_id": "1"}),
        ({"score": "up"}, {"score": 1}, {"score": -1}),
        ({"score": "down"}, {"score": -1}, {"score": 1}),
        ({"score": "none"}, {}, {"score": 1}),
    ],
)
def test_each_filter_narrows_the_list(
    support: User,
    acme: Workspace,
    params: dict[str, str],
    matching: dict[str, Any],
    other: dict[str, Any],
) -> None:
    wanted = make_trace(acme, **matching)
    unwanted = make_trace(acme, **other)

    rows, notes = _listed(support, workspace="acme", **params)

    assert wanted.pk in rows
    assert unwanted.pk not in rows
    assert notes == []


def test_the_actor_filter_finds_a_users_calls_by_email(
    support: User, acme: Workspace, owner: User, member: User
) -> None:
    owners = make_trace(acme, actor_id=str(owner.pk))
    members = make_trace(acme, actor_id=str(member.pk))

    rows, _ = _listed(support, actor_email="owner@acme")

    assert owners.pk in rows
    assert members.pk not in rows


def test_the_date_range_includes_both_days(support: User, acme: Workspace) -> None:
    now = timezone.now()
    inside = make_trace(acme, created_at=now - timedelta(days=3))
    last_day = make_trace(acme, created_at=now - timedelta(days=2))
    before = make_trace(acme, created_at=now - timedelta(days=6))
    after = make_trace(acme, created_at=now)

    rows, notes = _listed(
        support,
        workspace="acme",
        created_from=timezone.localdate(now - timedelta(days=3)).isoformat(),
        created_to=timezone.localdate(now - timedelta(days=2)).isoformat(),
    )

    assert {inside.pk, last_day.pk} <= rows
    assert not rows & {before.pk, after.pk}
    assert notes == []


@pytest.mark.parametrize(
    ("params", "warning"),
    [
        ({"created_from": "2026-13-45"}, "Ignored the date filter"),
        ({"created_to": "yesterday"}, "Ignored the date filter"),
        ({"workspace": "no-such-workspace"}, "there is no workspace “no-such-workspace”"),
        ({"workspace": "99999999"}, "there is no workspace"),
        ({"status": "exploded"}, "Ignored the status filter"),
        ({"score": "maybe"}, "Ignored the score filter"),
        ({"cached": "perhaps"}, "Ignored the cache hit filter"),
        ({"actor_email": "nobody-at-all@nowhere"}, "no user's email contains"),
        ({"feature": "chat; drop table"}, "Ignored the feature filter"),
        ({"alias": "<script>"}, "Ignored the alias filter"),
    ],
)
def test_a_malformed_filter_is_ignored_with_a_message(
    support: User, acme: Workspace, params: dict[str, str], warning: str
) -> None:
    trace = make_trace(acme)

    rows, notes = _listed(support, **params)

    assert trace.pk in rows  # the list is not filtered by the bad value
    assert any(warning in note for note in notes), notes


def test_search_finds_a_trace_by_request_id_trace_id_call_id_and_text(
    support: User, acme: Workspace
) -> None:
    wanted = make_trace(acme, response="The quokka is a small marsupial.")
    make_trace(acme, response="Kangaroos hop.")
    call = wanted.call

    for term in (call.request_id, str(wanted.trace_id), str(call.call_id), wanted.trace_id.hex):
        rows, _ = _listed(support, q=term)
        assert rows == {wanted.pk}, term
    # words of the answer, and of a message
    assert _listed(support, q="QUOKKA is")[0] == {wanted.pk}
    assert wanted.pk in _listed(support, q="weather in Paris")[0]


def test_text_search_scans_recent_days_unless_a_date_range_is_given(
    support: User, acme: Workspace
) -> None:
    old = make_trace(acme, created_at=timezone.now() - timedelta(days=30), response="wombat")

    assert old.pk not in _listed(support, q="wombat")[0]
    since = timezone.localdate(timezone.now() - timedelta(days=40)).isoformat()
    assert _listed(support, q="wombat", created_from=since)[0] == {old.pk}


def test_the_list_runs_the_same_queries_for_3_or_30_rows(support: User, acme: Workspace) -> None:
    client = admin_client(support)
    for _ in range(3):
        make_trace(acme, feature="nplusone")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(CHANGELIST, {"feature": "nplusone"}).status_code == 200
        return len(captured)

    few = queries()
    for _ in range(27):
        make_trace(acme, feature="nplusone")
    assert queries() == few


def test_the_page_renders_every_role_tool_calls_usage_cost_and_links(
    support: User, acme: Workspace
) -> None:
    trace = make_trace(
        acme,
        score=-1,
        cost_micros=2_500,
        prompt_name="chat.system",
        prompt_version="v1",
        fallback_used=True,
        attempts=["anthropic:timeout", "openai:ok"],
    )
    trace.score_comment = "Wrong city"
    trace.safety_signals = ["injection:ignore_previous"]
    trace.save(update_fields=["score_comment", "safety_signals"])
    with schema_context(acme.schema_name):
        agent = Agent.objects.create(name="Trace test agent")
        conversation = Conversation.objects.create(agent=agent, user_id=1)
        ChatMessage.objects.create(
            conversation=conversation,
            role="assistant",
            author_type="agent",
            author_id=str(agent.pk),
            trace_id=trace.trace_id,
        )

    response = admin_client(support).get(f"{CHANGELIST}{trace.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    for role in ("system", "user", "assistant", "tool"):
        assert f'data-testid="bubble-{role}"' in html
    assert "What is the weather in Paris?" in html
    assert 'data-testid="tool-call"' in html
    assert "&quot;city&quot;: &quot;Paris&quot;" in html
    assert "result of call_1" in html
    assert "It is 18 °C and sunny in Paris." in html
    assert "2,500 µ$ · 2.500 credits" in html
    assert "chat.system v1" in html
    assert "thumbs down" in html
    assert "Wrong city" in html
    assert "injection:ignore_previous" in html
    assert "anthropic:timeout → openai:ok" in html
    assert admin_url("traces_llmcalllog_change", trace.call.pk) in html
    assert f'href="{acme.url}chat/c/{conversation.pk}/"' in html


def test_the_tool_calls_a_trace_asked_for_are_listed_from_the_audit_log(
    support: User, acme: Workspace, member: User
) -> None:
    """Support sees, on a model call's trace, which tools ran for it and how they ended."""
    trace = make_trace(acme)
    with schema_context(acme.schema_name):
        agent = Agent.objects.create(name="Task helper", slug="th-trace", tools=["create_task"])
        membership = membership_get(workspace=acme, user=member)
        assert membership is not None
        ctx = ToolContext(
            workspace=acme,
            agent=agent,
            user=member,
            membership=membership,
            run_key="trace-test",
            trace_id=str(trace.trace_id),
        )
        tool_call(ctx, "create_task", {"title": "Order clay"})
        tool_call(ctx, "delete_task", {"id": 1})  # not allowed: refused, audited all the same

    html = admin_client(support).get(f"{CHANGELIST}{trace.pk}/change/").content.decode()

    assert html.count('data-testid="tool-audit"') == 2
    assert "create_task" in html
    assert "denied" in html
    assert member.email in html


def test_a_real_chat_call_renders_its_prompt_and_answer(
    support: User, acme: Workspace, owner: User
) -> None:
    prompt = unique("Summarise the quarterly numbers")
    trace = chat_trace(acme, owner, ask(prompt))

    response = admin_client(support).get(f"{CHANGELIST}{trace.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    assert prompt in html
    assert trace.response[:40] in html
    assert "offline local model" in html


def test_a_huge_body_is_cut_with_a_download_of_the_full_trace(
    support: User, acme: Workspace, settings: Any
) -> None:
    settings.TRACE_DISPLAY_MAX_CHARS = 1_000
    huge = "x" * 2_000_000
    trace = make_trace(
        acme,
        response=huge,
        messages=[{"role": "user", "content": f"message {i} " + "y" * 5_000} for i in range(200)],
    )
    client = admin_client(support)

    page = client.get(f"{CHANGELIST}{trace.pk}/change/")

    assert page.status_code == 200
    assert len(page.content) < 60_000  # ten texts' worth at most, not megabytes
    html = page.content.decode()
    assert 'data-testid="truncated-notice"' in html
    assert 'data-testid="omitted"' in html  # the rest of the 200 messages
    download = admin_url("traces_llmtrace_download", trace.pk)
    assert download in html
    full = client.get(download)
    assert full.status_code == 200
    assert full["Content-Disposition"] == f'attachment; filename="trace-{trace.trace_id}.json"'
    exported = json.loads(full.content)
    assert exported["response"] == huge
    assert len(exported["messages"]) == 200
    assert exported["call"]["request_id"] == trace.call.request_id


def test_unmasked_content_shows_only_on_an_explicit_post(support: User, acme: Workspace) -> None:
    trace = make_trace(
        acme, messages=[{"role": "user", "content": "Mail me at [EMAIL]"}], response="Sure."
    )
    LlmTraceRaw.objects.create(
        trace=trace,
        workspace=acme,
        messages=[{"role": "user", "content": "Mail me at jane@example.com"}],
        response="Sure.",
        created_at=trace.created_at,
    )
    client = admin_client(support)
    url = admin_url("traces_llmtrace_raw", trace.pk)

    masked = client.get(f"{CHANGELIST}{trace.pk}/change/").content.decode()
    assert "jane@example.com" not in masked
    assert 'data-testid="show-raw"' in masked
    assert client.get(url).status_code == 405
    raw = client.post(url)

    assert raw.status_code == 200
    assert "jane@example.com" in raw.content.decode()


def test_a_request_for_a_deleted_unmasked_copy_shows_the_masked_one(
    support: User, acme: Workspace
) -> None:
    trace = make_trace(acme)

    response = admin_client(support).post(admin_url("traces_llmtrace_raw", trace.pk))

    assert response.status_code == 200
    assert 'data-testid="raw-notice"' not in response.content.decode()
    assert any("is gone" in str(m) for m in get_messages(response.wsgi_request))


@pytest.mark.parametrize("object_id", ["999999999", "not-a-number"])
def test_a_missing_trace_is_a_404(support: User, object_id: str) -> None:
    client = admin_client(support)

    assert client.get(f"{CHANGELIST}{object_id}/download/").status_code == 404
    assert client.get(f"{CHANGELIST}{object_id}/replay/").status_code == 404


def test_the_call_log_shows_costs_and_links_support_to_the_trace(
    support: User, finance: User, acme: Workspace
) -> None:
    trace = make_trace(acme, cost_micros=7_654_321, response="secret answer text")
    link = admin_url("traces_llmtrace_change", trace.pk)

    for user, sees_link in ((support, True), (finance, False)):
        response = admin_client(user).get("/admin/traces/llmcalllog/", {"workspace": "acme"})
        html = response.content.decode()
        assert response.status_code == 200
        assert "7654321" in html or "7,654,321" in html
        assert "7654.321" in html  # credits
        assert (link in html) is sees_link
        assert "secret answer text" not in html
        detail = admin_client(user).get(f"/admin/traces/llmcalllog/{trace.call.pk}/change/")
        assert detail.status_code == 200
        assert (link in detail.content.decode()) is sees_link


def test_the_call_log_search_matches_ids_never_content(finance: User, acme: Workspace) -> None:
    trace = make_trace(acme, response="a very distinctive answer")
    client = admin_client(finance)

    by_id = client.get("/admin/traces/llmcalllog/", {"q": str(trace.trace_id)})
    by_text = client.get("/admin/traces/llmcalllog/", {"q": "distinctive"})

    assert [c.pk for c in by_id.context["cl"].result_list] == [trace.call.pk]
    assert list(by_text.context["cl"].result_list) == []
