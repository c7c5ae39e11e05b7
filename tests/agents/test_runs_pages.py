"""The runs pages: a member starts a run in the background and watches it; bad input is
refused with its message and nothing queued; another member's run, another workspace's and a
tampered id are 404; cancel says why when there is nothing to cancel."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django_tenants.utils import schema_context

from apps.agents.models import Agent, AgentRun
from apps.workspaces.models import User, Workspace
from tests.conftest import host_client

pytestmark = pytest.mark.django_db


def _html(response: Any) -> str:
    return str(response.content.decode())


@pytest.fixture
def helper(acme: Workspace) -> Agent:
    with schema_context(acme.schema_name):
        return Agent.objects.create(name="Task helper", slug="task-helper", tools=["create_task"])


def test_a_member_starts_a_run_and_sees_it(acme: Workspace, member: User, helper: Agent) -> None:
    client = host_client("acme.localhost", member)

    response = client.post(
        "/runs/new/", {"agent": helper.pk, "task": "Please create_task for two tasks"}
    )

    assert response.status_code == 302
    with schema_context(acme.schema_name):
        run = AgentRun.objects.get()
    assert response["Location"] == f"/runs/{run.public_id}/"
    page = _html(client.get(response["Location"]))
    assert 'data-testid="run-status">Queued' in page
    assert 'data-testid="run-cancel"' in page
    assert "Please create_task for two tasks" in _html(client.get("/runs/"))


def test_bad_input_is_refused_and_nothing_is_queued(
    acme: Workspace, member: User, helper: Agent
) -> None:
    with schema_context(acme.schema_name):
        bare = Agent.objects.create(name="Chatty", slug="chatty")
    client = host_client("acme.localhost", member)
    for data, message in (
        ({"agent": helper.pk, "task": "  "}, "Describe the task for the agent."),
        ({"agent": bare.pk, "task": "do it"}, "Chatty has no tools"),
        ({"agent": "nope", "task": "do it"}, "Choose an agent."),
        ({"agent": 999999, "task": "do it"}, "Choose an agent."),
    ):
        response = client.post("/runs/new/", data)
        assert response.status_code == 400, data
        assert message in _html(response), data
    with schema_context(acme.schema_name):
        assert not AgentRun.objects.exists()


def test_runs_of_others_and_tampered_ids_are_404(
    acme: Workspace, member: User, owner: User, outsider: User, helper: Agent
) -> None:
    with schema_context(acme.schema_name):
        theirs = AgentRun.objects.create(
            agent=helper, task="owner's", started_by_id=owner.pk, max_steps=3
        )
    member_client = host_client("acme.localhost", member)

    assert member_client.get(f"/runs/{theirs.public_id}/").status_code == 404
    assert member_client.post(f"/runs/{theirs.public_id}/cancel/").status_code == 404
    assert member_client.get("/runs/not-a-uuid/").status_code == 404
    assert member_client.get(f"/runs/{uuid.uuid4()}/").status_code == 404
    assert "owner&#x27;s" not in _html(member_client.get("/runs/"))
    assert host_client("acme.localhost", owner).get(f"/runs/{theirs.public_id}/").status_code == 200
    assert (
        host_client("globex.localhost", outsider).get(f"/runs/{theirs.public_id}/").status_code
        == 404
    )


def test_cancelling_a_finished_run_says_so(acme: Workspace, member: User, helper: Agent) -> None:
    with schema_context(acme.schema_name):
        run = AgentRun.objects.create(
            agent=helper, task="done", started_by_id=member.pk, max_steps=3, status="succeeded"
        )
    client = host_client("acme.localhost", member)

    page = client.post(f"/runs/{run.public_id}/cancel/", follow=True)

    assert "This run already succeeded; there is nothing to cancel." in _html(page)
    with schema_context(acme.schema_name):
        run.refresh_from_db()
    assert run.status == "succeeded"
