"""`/v1/agents/{slug}/runs` against daphne: 202 and the run's id, its status and steps, a cancel,
the steps as server-sent events; bad input and other keys' runs refused. The run itself is
executed here by the worker's own code (`run_execute`, on the offline model) — the Celery
path is tested in tests/agents/test_runs_worker.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from asgiref.sync import async_to_sync
from django_tenants.utils import schema_context

from apps.agents.models import Agent, AgentRun, Task, ToolAudit
from apps.agents.runs.executor import run_execute
from apps.workspaces.models import User, Workspace
from tests.api.conftest import Key, MakeKey
from tests.asgi_server import AsgiServer, run_committed
from tests.gateway_support import gateway_settings

pytestmark = pytest.mark.django_db

SLUG = "task-helper"


@pytest.fixture
def task_helper() -> Iterator[None]:
    def create() -> None:
        with schema_context("acme"):
            Agent.objects.create(name="Task helper", slug=SLUG, tools=["create_task"], max_steps=10)

    run_committed(create)
    yield

    def remove() -> None:
        with schema_context("acme"):
            AgentRun.objects.all().delete()
            Task.objects.all().delete()
            ToolAudit.objects.all().delete()
            Agent.objects.filter(slug=SLUG).delete()

    run_committed(remove)


@pytest.fixture
def http(api_server: AsgiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server.url("/v1"), timeout=30) as client:
        yield client


@pytest.fixture
def agent_key(make_key: MakeKey) -> Key:
    member = run_committed(lambda: User.objects.get(email="member@acme.test"))
    return make_key("acme", scopes=["agents"], created_by=member)


def _auth(key: Key) -> dict[str, str]:
    return {"authorization": f"Bearer {key.secret}"}


def _execute(run_id: str) -> str:
    def pk() -> int:
        with schema_context("acme"):
            return AgentRun.objects.get(public_id=run_id).pk

    acme = run_committed(lambda: Workspace.objects.get(slug="acme"))
    with gateway_settings():
        return async_to_sync(run_execute)(workspace=acme, run_id=run_committed(pk), owner="test")


@pytest.mark.usefixtures("task_helper")
def test_a_run_is_started_followed_and_read(http: httpx.Client, agent_key: Key) -> None:
    started = http.post(
        f"/agents/{SLUG}/runs",
        headers=_auth(agent_key),
        json={"task": "Please create_task for two tasks about clay", "max_steps": 5},
    )

    assert started.status_code == 202
    run: dict[str, Any] = started.json()
    assert (run["object"], run["status"], run["max_steps"]) == ("agent.run", "queued", 5)
    assert started.headers["location"] == f"/v1/agents/{SLUG}/runs/{run['id']}"

    assert _execute(run["id"]) == "succeeded"
    done = http.get(f"/agents/{SLUG}/runs/{run['id']}", headers=_auth(agent_key)).json()
    assert (done["status"], done["step"]) == ("succeeded", 2)
    assert [s["kind"] for s in done["steps"]].count("tool") == 2
    assert done["result"]

    with http.stream(
        "GET", f"/agents/{SLUG}/runs/{run['id']}/events", headers=_auth(agent_key)
    ) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        text = "".join(events.iter_text())
    assert text.count("event: step") == len(done["steps"])
    assert text.rstrip().splitlines()[-2] == "event: end"

    finished = http.post(f"/agents/{SLUG}/runs/{run['id']}/cancel", headers=_auth(agent_key))
    assert finished.status_code == 409
    assert "already succeeded" in finished.json()["error"]["message"]


@pytest.mark.usefixtures("task_helper")
def test_a_queued_run_is_cancelled_at_once(http: httpx.Client, agent_key: Key) -> None:
    run = http.post(
        f"/agents/{SLUG}/runs",
        headers=_auth(agent_key),
        json={"task": "Please create_task for two tasks"},
    ).json()

    cancelled = http.post(f"/agents/{SLUG}/runs/{run['id']}/cancel", headers=_auth(agent_key))

    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    assert _execute(run["id"]) == "skipped"


@pytest.mark.usefixtures("task_helper")
def test_bad_requests_and_other_keys_runs_are_refused(
    http: httpx.Client, agent_key: Key, make_key: MakeKey
) -> None:
    cases = [
        (f"/agents/{SLUG}/runs", {"task": ""}, 400, "Describe the task"),
        (f"/agents/{SLUG}/runs", {"task": "x", "max_steps": 0}, 400, "step cap"),
        (f"/agents/{SLUG}/runs", {"task": "x", "max_cost_micros": 0}, 400, "cost cap"),
        (f"/agents/{SLUG}/runs", {"task": "x", "tasks": 1}, 400, "Unknown field 'tasks'"),
        ("/agents/nobody/runs", {"task": "x"}, 404, "no agent 'nobody'"),
    ]
    for path, body, status, message in cases:
        response = http.post(path, headers=_auth(agent_key), json=body)
        assert response.status_code == status, (path, body, response.text)
        assert message in response.json()["error"]["message"], response.text
    assert (
        http.post(f"/agents/{SLUG}/runs", headers=_auth(agent_key), content=b"[1]").status_code
        == 400
    )

    run = http.post(
        f"/agents/{SLUG}/runs",
        headers=_auth(agent_key),
        json={"task": "Please create_task for two tasks"},
    ).json()
    chat_only = make_key("acme", scopes=["chat"])
    assert http.get(f"/agents/{SLUG}/runs/{run['id']}", headers=_auth(chat_only)).status_code == 403
    globex_owner = run_committed(lambda: User.objects.get(email="owner@globex.test"))
    outsider = make_key("globex", scopes=["agents"], created_by=globex_owner)
    assert http.get(f"/agents/{SLUG}/runs/{run['id']}", headers=_auth(outsider)).status_code == 404
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        response = http.get(f"/agents/{SLUG}/runs/{bad}", headers=_auth(agent_key))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "run_not_found"
