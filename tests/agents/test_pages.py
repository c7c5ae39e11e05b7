"""The Agents, Tasks and audit pages, the chat's agent picker and the hosts agents may fetch:
owners and admins manage, members read (and get 403 on every mutation), bad input is refused
with a precise message and nothing saved, and another workspace sees nothing of acme's."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.agents.chat.services import conversation_create
from apps.agents.models import Agent, Conversation, Task, ToolAudit
from apps.agents.services import agent_default
from apps.workspaces.ai import ai_settings_get
from apps.workspaces.models import Membership, Role, User, Workspace
from tests.conftest import host_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _client(user: User) -> Client:
    return host_client("acme.localhost", user)


def _html(response: Any) -> str:
    return str(response.content.decode())


@pytest.fixture
def admin(acme: Workspace) -> User:
    user = UserFactory.create(email="admin@acme.test")
    Membership.objects.get_or_create(workspace=acme, user=user, defaults={"role": Role.ADMIN})
    return user


@pytest.fixture
def in_acme(acme: Workspace) -> Iterator[None]:
    with schema_context(acme.schema_name):
        yield


def _agent(acme: Workspace, **fields: Any) -> Agent:
    with schema_context(acme.schema_name):
        fields.setdefault("name", "Researcher")
        fields.setdefault("slug", "researcher")
        return Agent.objects.create(**fields)


def _reload(acme: Workspace, row: Agent | Task) -> None:
    """Re-read a row of acme's schema (a request leaves the connection in its host's schema)."""
    with schema_context(acme.schema_name):
        row.refresh_from_db()


def _agents(acme: Workspace) -> dict[str, Agent]:
    with schema_context(acme.schema_name):
        return {a.slug: a for a in Agent.objects.all()}


FORM = {
    "name": "Support triage",
    "slug": "",
    "description": "Sorts tickets",
    "instructions": "Be brief.",
    "alias": "fast",
    "tools": ["list_tasks", "create_task"],
    "daily_spend_limit": "2.50",
    "max_steps": "6",
    "max_run_cost": "0.25",
}


def _form(**changes: Any) -> dict[str, Any]:
    return FORM | changes


# --- the agents page ---------------------------------------------------------------------------


def test_the_list_shows_agents_their_tools_flags_and_limits(
    acme: Workspace, member: User, owner: User
) -> None:
    _agent(
        acme,
        tools=["delete_task", "current_time"],
        daily_spend_limit_micros=1_500_000,
        max_run_cost_micros=250_000,
    )

    html = _html(_client(member).get("/agents/"))

    assert "Assistant" in html  # the default, created on first use
    assert "Researcher" in html
    assert "researcher" in html
    assert "Delete a task" in html
    assert 'class="flag flag-destructive risky"' in html
    assert 'class="flag flag-read_only"' in html
    assert "$1.50 a day" in html
    assert "$0.25 per run" in html
    assert 'data-testid="nav-agents"' in html
    assert 'data-testid="nav-tasks"' in html
    # a member reads; no management controls
    assert 'data-testid="agent-new"' not in html
    assert 'data-testid="agent-edit"' not in html
    assert 'data-testid="web-access"' not in html
    owner_html = _html(_client(owner).get("/agents/"))
    assert 'data-testid="agent-new"' in owner_html
    assert 'data-testid="web-access"' in owner_html


def test_an_admin_creates_an_agent_with_a_slug_from_its_name(acme: Workspace, admin: User) -> None:
    client = _client(admin)
    form = client.get("/agents/new/")
    assert form.status_code == 200
    # every tool offered with its label, and destructive or external ones marked
    assert 'value="delete_task"' in _html(form)
    assert '<span class="flag flag-external risky">external</span>' in _html(form)

    response = client.post("/agents/new/", _form())

    assert response.status_code == 302
    assert response["Location"] == "/agents/"
    agent = _agents(acme)["support-triage"]
    assert (agent.name, agent.alias, agent.tools, agent.max_steps) == (
        "Support triage",
        "fast",
        ["list_tasks", "create_task"],
        6,
    )
    assert (agent.daily_spend_limit_micros, agent.max_run_cost_micros) == (2_500_000, 250_000)
    assert agent.created_by_id == admin.pk
    assert agent.is_active
    assert not agent.is_default


def test_an_admin_edits_pauses_resumes_and_deletes_an_agent(acme: Workspace, admin: User) -> None:
    agent = _agent(acme, tools=["current_time"], daily_spend_limit_micros=1_000_000)
    client = _client(admin)

    form = _html(client.get(f"/agents/{agent.pk}/edit/"))
    assert 'value="1"' in form  # $1 shown as dollars

    response = client.post(
        f"/agents/{agent.pk}/edit/",
        _form(name="Researcher", slug="researcher", tools=[], daily_spend_limit=""),
    )
    assert response.status_code == 302
    _reload(acme, agent)
    assert (agent.tools, agent.daily_spend_limit_micros, agent.alias) == ([], None, "fast")

    assert client.post(f"/agents/{agent.pk}/status/", {"status": "paused"}).status_code == 302
    _reload(acme, agent)
    assert agent.status == "paused"
    assert client.post(f"/agents/{agent.pk}/status/", {"status": "active"}).status_code == 302
    _reload(acme, agent)
    assert agent.status == "active"

    confirm = client.get(f"/agents/{agent.pk}/delete/")
    assert 'data-testid="agent-delete-confirm-button"' in _html(confirm)
    assert client.post(f"/agents/{agent.pk}/delete/").status_code == 302
    assert "researcher" not in _agents(acme)


def test_an_agent_with_conversations_is_paused_not_deleted(
    acme: Workspace, owner: User, member: User
) -> None:
    agent = _agent(acme)
    with schema_context(acme.schema_name):
        conversation_create(user=member, agent=agent)
    client = _client(owner)

    page = _html(client.get(f"/agents/{agent.pk}/delete/"))
    assert 'data-testid="agent-has-conversations"' in page
    assert 'data-testid="agent-pause-instead"' in page
    assert 'data-testid="agent-delete-confirm-button"' not in page

    refused = client.post(f"/agents/{agent.pk}/delete/")

    assert refused.status_code == 409
    assert "has 1 conversation" in _html(refused)
    assert "researcher" in _agents(acme)
    with schema_context(acme.schema_name):
        assert Conversation.objects.filter(agent=agent).count() == 1


def test_the_default_assistant_is_edited_but_never_paused_deleted_or_given_tools(
    acme: Workspace, owner: User
) -> None:
    with schema_context(acme.schema_name):
        assistant = agent_default()
    client = _client(owner)

    response = client.post(
        f"/agents/{assistant.pk}/edit/",
        _form(
            name="Assistant", slug="renamed", instructions="Answer in French.", tools=["http_get"]
        ),
    )

    assert response.status_code == 302
    _reload(acme, assistant)
    # the slug and (empty) tools are not editable: disabled fields keep their values
    assert (assistant.slug, assistant.tools) == ("assistant", [])
    assert (assistant.instructions, assistant.alias) == ("Answer in French.", "fast")

    paused = client.post(f"/agents/{assistant.pk}/status/", {"status": "paused"})
    assert paused.status_code == 400
    assert "cannot be paused" in _html(paused)
    assert client.post(f"/agents/{assistant.pk}/delete/").status_code == 409
    _reload(acme, assistant)
    assert assistant.is_active
    assert "assistant" in _agents(acme)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"slug": "researcher"}, "slug", "Another agent has the slug “researcher”"),
        ({"slug": "assistant"}, "slug", "“assistant” is the default Assistant"),
        ({"slug": "Not A Slug!"}, "slug", "Use lowercase letters, digits and single hyphens"),
        ({"name": "!!!", "slug": ""}, "slug", "The name makes no slug"),
        ({"tools": ["list_tasks", "rm_rf"]}, "tools", "“rm_rf” is not a tool of this platform."),
        ({"alias": "embed"}, "alias", "“embed” is not a model alias."),
        ({"daily_spend_limit": "-5"}, "daily_spend_limit", "must be more than $0"),
        ({"max_run_cost": "0"}, "max_run_cost", "must be more than $0"),
        ({"max_run_cost": "lots"}, "max_run_cost", "Enter the cost cap per run in dollars"),
        ({"daily_spend_limit": "0.0000001"}, "daily_spend_limit", "six decimal places"),
        ({"max_steps": "0"}, "max_steps", "Max steps is a whole number from 1 to 50."),
        ({"max_steps": "51"}, "max_steps", "Max steps is a whole number from 1 to 50."),
        ({"name": ""}, "name", "This field is required."),
        ({"instructions": "x" * 8001}, "instructions", "Keep the instructions to 8,000"),
    ],
)
def test_bad_input_is_refused_precisely_and_nothing_is_saved(
    acme: Workspace, owner: User, changes: dict[str, Any], field: str, message: str
) -> None:
    _agent(acme)
    before = set(_agents(acme))

    response = _client(owner).post("/agents/new/", _form(**changes))

    assert response.status_code == 400
    html = _html(response)
    assert f'data-testid="{field}-error"' in html
    assert message in html
    assert set(_agents(acme)) == before


def test_bad_input_on_edit_changes_nothing(acme: Workspace, owner: User) -> None:
    agent = _agent(acme, max_steps=8)
    _agent(acme, name="Other", slug="other")

    response = _client(owner).post(
        f"/agents/{agent.pk}/edit/", _form(name="Renamed", slug="other", max_steps="3")
    )

    assert response.status_code == 400
    assert "Another agent has the slug “other”" in _html(response)
    _reload(acme, agent)
    assert (agent.name, agent.slug, agent.max_steps) == ("Researcher", "researcher", 8)


def test_members_get_403_on_every_agent_mutation(acme: Workspace, member: User) -> None:
    agent = _agent(acme)
    client = _client(member)

    attempts = [
        client.get("/agents/new/"),
        client.post("/agents/new/", _form(name="Mine")),
        client.get(f"/agents/{agent.pk}/edit/"),
        client.post(f"/agents/{agent.pk}/edit/", _form(name="Hijacked", slug="researcher")),
        client.post(f"/agents/{agent.pk}/status/", {"status": "paused"}),
        client.get(f"/agents/{agent.pk}/delete/"),
        client.post(f"/agents/{agent.pk}/delete/"),
        client.post("/agents/web-access/", {"http_allowed_domains": "evil.example"}),
        client.get("/agents/audit/"),
    ]

    assert [r.status_code for r in attempts] == [403] * len(attempts)
    assert 'data-testid="agents-refused"' in _html(attempts[0])
    _reload(acme, agent)
    assert (agent.name, agent.status) == ("Researcher", "active")
    assert set(_agents(acme)) - {"assistant"} == {"researcher"}  # committed chat tests seed it
    assert ai_settings_get(workspace=acme).http_allowed_domains == []


def test_mutations_are_post_only(acme: Workspace, owner: User) -> None:
    agent = _agent(acme)
    client = _client(owner)

    assert client.get(f"/agents/{agent.pk}/status/").status_code == 405
    assert client.get("/agents/web-access/").status_code == 405


def test_another_workspace_never_sees_acmes_agents(
    acme: Workspace, globex: Workspace, outsider: User
) -> None:
    agent = _agent(acme, name="Acme secret agent", slug="acme-secret")

    # on acme's host, a globex member is no member: 404 everywhere
    on_acme = host_client("acme.localhost", outsider)
    assert on_acme.get("/agents/").status_code == 404
    assert on_acme.post(f"/agents/{agent.pk}/delete/").status_code == 404
    # on globex's own host the id names nothing, and acme's agent is not listed
    globex_owner = User.objects.get(email="owner@globex.test")
    on_globex = host_client("globex.localhost", globex_owner)
    assert "Acme secret agent" not in _html(on_globex.get("/agents/"))
    assert on_globex.get(f"/agents/{agent.pk}/edit/").status_code == 404
    assert on_globex.post(f"/agents/{agent.pk}/status/", {"status": "paused"}).status_code == 404
    assert on_globex.post(f"/agents/{agent.pk}/delete/").status_code == 404
    _reload(acme, agent)
    assert agent.is_active


# --- hosts agents may fetch ----------------------------------------------------------------------


def test_an_admin_lists_the_hosts_agents_may_fetch(acme: Workspace, admin: User) -> None:
    client = _client(admin)

    response = client.post(
        "/agents/web-access/",
        {"http_allowed_domains": "Docs.Example.com\n\n.example.org\ndocs.example.com\n10.0.0.5"},
    )

    assert response.status_code == 302
    assert ai_settings_get(workspace=acme).http_allowed_domains == [
        "docs.example.com",
        ".example.org",
        "10.0.0.5",
    ]
    assert ".example.org" in _html(client.get("/agents/"))
    assert client.post("/agents/web-access/", {"http_allowed_domains": ""}).status_code == 302
    assert ai_settings_get(workspace=acme).http_allowed_domains == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ok.example\nhttps://example.com/page", "Line 2: “https://example.com/page” is a URL"),
        ("*.example.com", "write “.example.com” (a leading dot)"),
        ("example.com:8080", "without a port"),
        ("exa mple.com", "is not a host name"),
        ("-bad-.example", "is not a host name"),
        (".com", "would allow a whole top-level domain"),
        ("bücher.example", "ASCII (xn--) form"),
        ("\n".join(f"h{i}.example" for i in range(51)), "List at most 50 hosts (this list has 51)"),
    ],
)
def test_bad_hosts_are_refused_precisely(
    acme: Workspace, owner: User, text: str, message: str
) -> None:
    ai = ai_settings_get(workspace=acme)
    ai.http_allowed_domains = ["kept.example"]
    ai.save()

    response = _client(owner).post("/agents/web-access/", {"http_allowed_domains": text})

    assert response.status_code == 400
    assert message in _html(response)
    assert ai_settings_get(workspace=acme).http_allowed_domains == ["kept.example"]


# --- tasks -------------------------------------------------------------------------------------


def _task(acme: Workspace, user: User, title: str, **fields: Any) -> Task:
    with schema_context(acme.schema_name):
        return Task.objects.create(title=title, created_by_id=user.pk, **fields)


def test_a_member_adds_a_task_and_sees_open_ones_first(acme: Workspace, member: User) -> None:
    _task(acme, member, "Finished thing", status="done")
    client = _client(member)

    response = client.post(
        "/tasks/add/", {"title": "  Order clay ", "notes": "10 kg", "due_on": "2030-01-05"}
    )

    assert response.status_code == 302
    with schema_context(acme.schema_name):
        task = Task.objects.get(title="Order clay")
    assert (task.notes, str(task.due_on), task.created_by_id, task.status) == (
        "10 kg",
        "2030-01-05",
        member.pk,
        "open",
    )
    html = _html(client.get("/tasks/"))
    assert html.index("Order clay") < html.index("Finished thing")
    assert "by member@acme.test" in html
    assert "Finished thing" not in _html(client.get("/tasks/?show=open"))
    assert "Order clay" not in _html(client.get("/tasks/?show=done"))


def test_a_task_without_a_title_is_refused(acme: Workspace, member: User) -> None:
    response = _client(member).post("/tasks/add/", {"title": "   ", "due_on": "someday"})

    assert response.status_code == 400
    html = _html(response)
    assert "Give the task a title." in html
    assert "Enter a date as YYYY-MM-DD." in html
    with schema_context(acme.schema_name):
        assert not Task.objects.exists()


def test_a_task_an_agent_wrote_says_for_whom(acme: Workspace, member: User) -> None:
    agent = _agent(acme, name="Planner", slug="planner")
    _task(acme, member, "Book the venue", created_by_agent=agent)

    html = _html(_client(member).get("/tasks/"))

    assert "by Planner for member@acme.test" in html


def test_members_change_their_own_tasks_and_not_others(
    acme: Workspace, owner: User, member: User
) -> None:
    mine = _task(acme, member, "Mine")
    theirs = _task(acme, owner, "The owner's")
    client = _client(member)

    assert client.post(f"/tasks/{mine.pk}/status/", {"status": "done"}).status_code == 302
    _reload(acme, mine)
    assert mine.status == "done"
    assert client.post(f"/tasks/{mine.pk}/status/", {"status": "open"}).status_code == 302
    _reload(acme, mine)
    assert mine.status == "open"

    refused_done = client.post(f"/tasks/{theirs.pk}/status/", {"status": "done"})
    refused_delete = client.post(f"/tasks/{theirs.pk}/delete/")

    assert (refused_done.status_code, refused_delete.status_code) == (403, 403)
    assert "belongs to someone else" in _html(refused_delete)
    _reload(acme, theirs)
    assert theirs.status == "open"
    # the page offers no controls on another's task
    page = _html(client.get("/tasks/"))
    row = page[page.index(f'data-task-id="{theirs.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "task-delete" not in row

    assert client.post(f"/tasks/{mine.pk}/delete/").status_code == 302
    with schema_context(acme.schema_name):
        assert list(Task.objects.values_list("title", flat=True)) == ["The owner's"]


def test_owners_change_and_delete_anyones_task(acme: Workspace, owner: User, member: User) -> None:
    task = _task(acme, member, "A member's")
    client = _client(owner)

    assert client.post(f"/tasks/{task.pk}/status/", {"status": "done"}).status_code == 302
    assert client.post(f"/tasks/{task.pk}/delete/").status_code == 302
    with schema_context(acme.schema_name):
        assert not Task.objects.exists()


def test_task_can_change_is_the_one_rule(acme: Workspace, owner: User, member: User) -> None:
    from apps.agents.selectors import task_can_change

    task = _task(acme, owner, "The owner's")
    as_member = Membership.objects.get(workspace=acme, user=member)
    as_owner = Membership.objects.get(workspace=acme, user=owner)

    assert not task_can_change(task=task, membership=as_member)
    assert task_can_change(task=task, membership=as_owner)


def test_another_workspace_never_sees_acmes_tasks(
    acme: Workspace, outsider: User, member: User
) -> None:
    task = _task(acme, member, "Acme secret task")

    on_acme = host_client("acme.localhost", outsider)
    assert on_acme.get("/tasks/").status_code == 404
    assert on_acme.post(f"/tasks/{task.pk}/delete/").status_code == 404
    on_globex = host_client("globex.localhost", outsider)
    assert "Acme secret task" not in _html(on_globex.get("/tasks/"))
    assert on_globex.post(f"/tasks/{task.pk}/status/", {"status": "done"}).status_code == 404
    assert on_globex.post(f"/tasks/{task.pk}/delete/").status_code == 404
    _reload(acme, task)
    assert task.status == "open"


# --- the audit ---------------------------------------------------------------------------------


def _audit(acme: Workspace, **fields: Any) -> ToolAudit:
    fields.setdefault("agent_name", "Planner")
    fields.setdefault("tool", "create_task")
    fields.setdefault("status", ToolAudit.Status.OK)
    with schema_context(acme.schema_name):
        return ToolAudit.objects.create(**fields)


def _audit_at(acme: Workspace, when: dt.datetime, **fields: Any) -> ToolAudit:
    # created_at is auto_now_add (and the append-only trigger refuses updates): create the
    # row while the clock says `when`.
    with mock.patch("django.utils.timezone.now", return_value=when):
        return _audit(acme, **fields)


def test_owners_read_the_audit_newest_first_with_filters(
    acme: Workspace, owner: User, member: User
) -> None:
    planner = _agent(acme, name="Planner", slug="planner")
    trace = uuid.uuid4()
    _audit(
        acme,
        agent_id=planner.pk,
        on_behalf_of_id=member.pk,
        result_summary="Created task 7",
        trace_id=trace,
        duration_ms=42,
    )
    _audit(
        acme,
        agent_id=planner.pk,
        on_behalf_of_id=owner.pk,
        tool="delete_task",
        status=ToolAudit.Status.DENIED,
        reason="Task 3 belongs to someone else",
    )
    client = _client(owner)

    html = _html(client.get("/agents/audit/"))
    assert html.index("delete_task") < html.index("Created task 7")  # newest first
    assert "member@acme.test" in html
    assert "42 ms" in html
    assert "Task 3 belongs to someone else" in html
    assert str(trace) in html  # the id (a link for staff)

    denied = _html(client.get("/agents/audit/", {"status": "denied"}))
    assert "Task 3 belongs to someone else" in denied
    assert "Created task 7" not in denied
    by_person = _html(client.get("/agents/audit/", {"person": str(member.pk)}))
    assert "Created task 7" in by_person
    assert "Task 3 belongs" not in by_person
    by_tool = _html(client.get("/agents/audit/", {"tool": "create_task", "agent": str(planner.pk)}))
    assert "Created task 7" in by_tool
    assert "Task 3 belongs" not in by_tool


def test_the_audit_filters_by_date_and_refuses_a_backwards_range(
    acme: Workspace, owner: User
) -> None:
    _audit_at(acme, timezone.now() - dt.timedelta(days=400), result_summary="Old call")
    _audit(acme, result_summary="Recent call")
    today = timezone.now().astimezone(dt.UTC).date()
    client = _client(owner)

    recent = _html(client.get("/agents/audit/", {"start": str(today)}))
    assert "Recent call" in recent
    assert "Old call" not in recent

    backwards = client.get(
        "/agents/audit/", {"start": str(today), "end": str(today - dt.timedelta(days=1))}
    )
    assert backwards.status_code == 400
    assert "The end date is before the start date." in _html(backwards)


def test_staff_get_a_link_to_the_trace(acme: Workspace, owner: User) -> None:
    trace = uuid.uuid4()
    _audit(acme, trace_id=trace)
    owner.is_staff = True
    owner.save(update_fields=["is_staff"])

    html = _html(_client(owner).get("/agents/audit/"))

    assert f"/admin/traces/llmtrace/?q={trace}" in html


def test_another_workspace_never_sees_acmes_audit(acme: Workspace, outsider: User) -> None:
    _audit(acme, result_summary="Acme audited call")

    assert host_client("acme.localhost", outsider).get("/agents/audit/").status_code == 404
    globex_owner = User.objects.get(email="owner@globex.test")
    html = _html(host_client("globex.localhost", globex_owner).get("/agents/audit/"))
    assert "Acme audited call" not in html


# --- the chat's agent picker -------------------------------------------------------------------


def _conversations(acme: Workspace, user: User) -> list[Conversation]:
    with schema_context(acme.schema_name):
        return list(Conversation.objects.filter(user_id=user.pk).select_related("agent"))


def test_the_picker_lists_active_agents_and_starts_with_the_chosen_one(
    acme: Workspace, member: User
) -> None:
    agent = _agent(acme, name="Researcher", slug="researcher")
    _agent(acme, name="Sleeper", slug="sleeper", status=Agent.Status.PAUSED)
    client = _client(member)

    page = _html(client.get("/chat/"))
    assert 'data-testid="agent-picker"' in page
    assert ">Researcher</option>" in page
    assert "Sleeper" not in page

    by_id = client.post("/chat/new/", {"agent": str(agent.pk)})
    by_slug = client.post("/chat/new/", {"agent": "researcher"})
    default = client.post("/chat/new/", {"agent": ""})

    assert [r.status_code for r in (by_id, by_slug, default)] == [302, 302, 302]
    agents = sorted((c.pk, c.agent.slug) for c in _conversations(acme, member))
    assert [slug for _, slug in agents] == ["researcher", "researcher", "assistant"]
    chat = _html(client.get(by_id["Location"]))
    assert '<span data-testid="conversation-agent">Researcher</span>' in chat


def test_the_picker_refuses_a_paused_or_foreign_agent(
    acme: Workspace, globex: Workspace, member: User
) -> None:
    paused = _agent(acme, name="Sleeper", slug="sleeper", status=Agent.Status.PAUSED)
    with schema_context(globex.schema_name):
        Agent.objects.create(name="Globex bot", slug="globex-bot")
    client = _client(member)

    refused = client.post("/chat/new/", {"agent": str(paused.pk)})
    assert refused.status_code == 302
    assert refused["Location"] == "/chat/"
    assert "Sleeper is paused" in _html(client.get("/chat/"))
    assert client.post("/chat/new/", {"agent": "sleeper"}).status_code == 302
    assert client.post("/chat/new/", {"agent": "globex-bot"}).status_code == 404
    assert client.post("/chat/new/", {"agent": "9999999"}).status_code == 404
    assert client.post("/chat/new/", {"agent": "no such agent"}).status_code == 404
    assert _conversations(acme, member) == []
