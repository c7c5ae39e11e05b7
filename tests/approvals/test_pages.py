"""The approvals inbox, decisions over HTTP, the autonomy page and Undo: who may see and do
what, bad input refused with a precise message and nothing changed, and another workspace's
people see nothing of acme's."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django_tenants.utils import schema_context

from apps.agents.models import Agent, Task, ToolAudit
from apps.agents.tools.runner import tool_call
from apps.approvals.models import Level, PendingAction, PolicyChange
from apps.approvals.policy import level_for
from apps.workspaces.models import User, Workspace
from apps.workspaces.presence import presence_clear, presence_mark
from tests.approvals.conftest import TASK_TOOLS, ctx_for, set_level
from tests.conftest import host_client

pytestmark = pytest.mark.django_db


def _client(user: User, host: str = "acme.localhost") -> Client:
    return host_client(host, user)


def _html(response: Any) -> str:
    return str(response.content.decode())


def _held(
    acme: Workspace, member: User, *, approvers: str = "admins"
) -> tuple[Agent, Task, PendingAction]:
    with schema_context(acme.schema_name):
        agent = Agent.objects.create(name="Task helper", slug="task-helper", tools=TASK_TOOLS)
        if approvers != "admins":
            set_level(agent, "delete_task", Level.CONFIRM, approvers=approvers)
        task = Task.objects.create(title="Old invoices", created_by_id=member.pk)
        tool_call(ctx_for(acme, member, agent), "delete_task", {"id": task.pk}, step=1)
        return agent, task, PendingAction.objects.get()


def _reload(acme: Workspace, action: PendingAction) -> PendingAction:
    with schema_context(acme.schema_name):
        action.refresh_from_db()
        return action


def test_the_inbox_lists_what_waits_and_the_badge_counts_it(
    acme: Workspace, member: User, owner: User
) -> None:
    _, task, action = _held(acme, member)

    owners = _html(_client(owner).get("/approvals/"))
    members = _html(_client(member).get("/approvals/"))
    home = _html(_client(owner).get("/tasks/"))

    assert f'data-action="{action.public_id}"' in owners
    assert 'data-testid="approve"' in owners
    assert f"{{&#x27;id&#x27;: {task.pk}}}" in owners  # the exact arguments
    assert f'data-action="{action.public_id}"' in members  # asked on their behalf…
    assert 'data-testid="approve"' not in members  # …but only owners and admins decide
    assert 'data-testid="approvals-badge" data-count="1"' not in home  # attribute order
    assert 'data-count="1"' in home
    assert _client(owner).get("/approvals/count/").json() == {"open": 1}
    assert _client(member).get("/approvals/count/").json() == {"open": 0}


def test_an_approver_who_is_offline_gets_an_email(
    acme: Workspace, member: User, owner: User, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _held(acme, member)  # nobody has a workspace page open

    [email] = [m for m in mail.outbox if owner.email in m.to]
    assert "wants to Delete a task" in email.subject
    assert "/approvals/" in email.body


def test_approving_over_http_once_and_a_second_time_is_refused(
    acme: Workspace, member: User, owner: User
) -> None:
    _, _, action = _held(acme, member)
    url = f"/approvals/{action.public_id}/decide/"

    first = _client(owner).post(url, {"decision": "approve"}, HTTP_HX_REQUEST="true")
    second = _client(owner).post(url, {"decision": "reject"}, HTTP_HX_REQUEST="true")

    assert first.status_code == 200
    assert 'data-status="approved"' in _html(first)
    assert second.status_code == 400
    assert f"already approved by {owner.email}" in _html(second)
    assert _reload(acme, action).status == "approved"


def test_a_member_may_not_decide_for_admins_and_bad_decisions_are_refused(
    acme: Workspace, member: User, owner: User
) -> None:
    _, _, action = _held(acme, member)
    url = f"/approvals/{action.public_id}/decide/"

    refused = _client(member).post(url, {"decision": "approve"}, HTTP_HX_REQUEST="true")
    unknown = _client(owner).post(url, {"decision": "maybe"}, HTTP_HX_REQUEST="true")
    plain = _client(member).post(url, {"decision": "approve"})

    assert refused.status_code == 403
    assert "Only owners and admins can decide" in _html(refused)
    assert unknown.status_code == 400
    assert "Choose approve or reject." in _html(unknown)
    assert plain.status_code == 302  # a plain form: back to the inbox, with the message
    assert _reload(acme, action).status == "pending"


def test_tampered_and_foreign_action_ids_are_404(
    acme: Workspace, globex: Workspace, member: User, owner: User, outsider: User
) -> None:
    _, _, action = _held(acme, member)

    for path in ("not-a-uuid", str(uuid.uuid4())):
        assert _client(owner).get(f"/approvals/{path}/").status_code == 404
        assert (
            _client(owner).post(f"/approvals/{path}/decide/", {"decision": "approve"}).status_code
            == 404
        )
    # globex's owner, on globex's host, asking for acme's action
    foreign = _client(outsider, "globex.localhost")
    assert foreign.get(f"/approvals/{action.public_id}/").status_code == 404
    assert (
        foreign.post(f"/approvals/{action.public_id}/decide/", {"decision": "approve"}).status_code
        == 404
    )
    # and on acme's host, not a member
    assert _client(outsider).get("/approvals/").status_code == 404
    assert _reload(acme, action).status == "pending"


def test_a_member_sees_only_the_actions_asked_on_their_behalf(
    acme: Workspace, member: User, owner: User
) -> None:
    with schema_context(acme.schema_name):
        agent = Agent.objects.create(name="Task helper", slug="task-helper", tools=TASK_TOOLS)
        task = Task.objects.create(title="Owner's", created_by_id=owner.pk)
        tool_call(ctx_for(acme, owner, agent), "delete_task", {"id": task.pk}, step=1)
        action = PendingAction.objects.get()

    assert _client(member).get(f"/approvals/{action.public_id}/").status_code == 404
    assert f'data-action="{action.public_id}"' not in _html(_client(member).get("/approvals/"))


def test_the_requester_may_decide_when_the_rule_says_so(acme: Workspace, member: User) -> None:
    _, _, action = _held(acme, member, approvers="requester")

    response = _client(member).post(
        f"/approvals/{action.public_id}/decide/", {"decision": "reject"}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    assert _reload(acme, action).status == "rejected"


def test_admins_set_levels_on_the_autonomy_page_and_every_change_is_logged(
    acme: Workspace, member: User, owner: User
) -> None:
    with schema_context(acme.schema_name):
        agent = Agent.objects.create(name="Task helper", slug="task-helper", tools=TASK_TOOLS)
    page = _html(_client(owner).get("/agents/autonomy/"))
    assert 'data-tool="delete_task"' in page
    assert "L3" in page  # the destructive default

    response = _client(owner).post(
        "/agents/autonomy/rule/",
        {
            "agent": agent.pk,
            "target": "delete_task",
            "level": "5",
            "approvers": "admins",
            "reason": "bulk cleanup week",
        },
    )
    back = _client(owner).post(
        "/agents/autonomy/rule/",
        {"agent": agent.pk, "target": "delete_task", "level": "", "approvers": "admins"},
    )

    assert response.status_code == back.status_code == 302
    with schema_context(acme.schema_name):
        changes = list(
            PolicyChange.objects.order_by("pk").values_list(
                "changed_by_email", "target", "from_level", "to_level", "reason"
            )
        )
        assert changes == [
            (owner.email, "delete_task", None, 5, "bulk cleanup week"),
            (owner.email, "delete_task", 5, None, ""),
        ]
        assert (
            level_for(agent_id=agent.pk, tool="delete_task", flags=["destructive"]).level
            == Level.CONFIRM
        )


def test_the_autonomy_page_refuses_members_and_bad_input(
    acme: Workspace, member: User, owner: User
) -> None:
    with schema_context(acme.schema_name):
        agent = Agent.objects.create(name="Task helper", slug="task-helper", tools=["list_tasks"])

    assert _client(member).get("/agents/autonomy/").status_code == 403
    assert (
        _client(member)
        .post("/agents/autonomy/rule/", {"agent": agent.pk, "target": "list_tasks", "level": "1"})
        .status_code
        == 403
    )
    cases = [
        (
            {"agent": agent.pk, "target": "list_tasks", "level": "9", "approvers": "admins"},
            "Select a valid choice",
        ),
        (
            {"agent": agent.pk, "target": "delete_task", "level": "3", "approvers": "admins"},
            "Task helper has no tool “delete_task”",
        ),
        (
            {"agent": 999999, "target": "list_tasks", "level": "3", "approvers": "admins"},
            "No such agent",
        ),
        (
            {"target": "dangerous", "level": "3", "approvers": "admins"},
            "Unknown tool flag “dangerous”",
        ),
        (
            {"agent": agent.pk, "target": "list_tasks", "level": "3", "approvers": "everyone"},
            "Select a valid choice",
        ),
    ]
    for data, message in cases:
        response = _client(owner).post("/agents/autonomy/rule/", data)
        assert response.status_code == 400, data
        assert message in _html(response), data
    with schema_context(acme.schema_name):
        assert not PolicyChange.objects.exists()


def test_workspace_defaults_per_flag_and_the_external_sender_ramp(
    acme: Workspace, owner: User
) -> None:
    with schema_context(acme.schema_name):
        agent = Agent.objects.create(name="Mailer", slug="mailer", tools=["send_email"])
        assert (
            level_for(agent_id=agent.pk, tool="send_email", flags=["external"]).level
            == Level.CONFIRM
        )
        assert (
            level_for(agent_id=agent.pk, tool="send_email", flags=["external"], uses=100).level
            == Level.PLAN
        )
        assert (
            level_for(agent_id=agent.pk, tool="x", flags=["writes", "destructive"]).level
            == Level.CONFIRM
        )
    response = _client(owner).post(
        "/agents/autonomy/rule/", {"target": "external", "level": "2", "approvers": "admins"}
    )
    assert response.status_code == 302
    with schema_context(acme.schema_name):
        resolved = level_for(agent_id=agent.pk, tool="send_email", flags=["external"])
        assert (resolved.level, resolved.source) == (Level.UNDO, "workspace")
        set_level(agent, "*", Level.SUGGEST)
        assert level_for(agent_id=agent.pk, tool="send_email", flags=["external"]).source == "agent"
        set_level(agent, "send_email", Level.AUTONOMOUS)
        resolved = level_for(agent_id=agent.pk, tool="send_email", flags=["external"])
        assert (resolved.level, resolved.source, resolved.default) == (
            Level.AUTONOMOUS,
            "tool",
            Level.UNDO,
        )


def test_undo_over_http_is_for_the_person_or_an_admin(
    acme: Workspace, member: User, owner: User, outsider: User
) -> None:
    with schema_context(acme.schema_name):
        agent = Agent.objects.create(name="Task helper", slug="task-helper", tools=TASK_TOOLS)
        set_level(agent, "create_task", Level.UNDO)
        made = tool_call(ctx_for(acme, owner, agent), "create_task", {"title": "Oops"}, step=1)

    assert _client(member).post(f"/agents/audit/{made.audit_id}/undo/").status_code == 404
    undone = _client(owner).post(f"/agents/audit/{made.audit_id}/undo/")
    again = _client(owner).post(f"/agents/audit/{made.audit_id}/undo/")

    assert undone.status_code == 200
    assert "Undone: task" in _html(undone)
    assert again.status_code == 400
    assert "already undone" in _html(again)
    with schema_context(acme.schema_name):
        assert not Task.objects.filter(title="Oops").exists()
        assert ToolAudit.objects.filter(undo_of=made.audit_id).count() == 1


def test_an_approver_with_a_page_open_is_not_emailed(
    acme: Workspace, member: User, owner: User, django_capture_on_commit_callbacks: Any
) -> None:
    with schema_context(acme.schema_name):
        presence_mark(owner.pk)  # what the workspace socket does on connect and ping
    try:
        with django_capture_on_commit_callbacks(execute=True):
            _held(acme, member)
    finally:
        with schema_context(acme.schema_name):
            presence_clear(owner.pk)

    assert not [m for m in mail.outbox if owner.email in m.to]
