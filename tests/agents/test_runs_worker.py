"""Long runs on a real Celery worker process that is killed with SIGKILL mid-run (F12/F13):
the janitor gives the run to a new worker once the dead one's lease expires, the run resumes
from its last checkpoint, and every side effect happened exactly once — ten tasks asked for,
ten tasks made, ten successful create_task calls in the audit log. The worker's model answers
at a realistic pace so the kills land inside steps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django_tenants.utils import schema_context

from apps.agents.models import Agent, AgentRun, Task, ToolAudit
from apps.agents.runs.services import run_start, runs_janitor
from apps.workspaces.models import User, Workspace
from apps.workspaces.selectors import membership_get
from tests.asgi_server import run_committed
from tests.common.conftest import CeleryWorker, worker_env

pytestmark = pytest.mark.django_db

LEASE_SECONDS = 2


@pytest.fixture
def slow_worker(tmp_path: Any) -> Iterator[CeleryWorker]:
    env = {
        **worker_env(),
        "LLM_LOCAL_TOKENS_PER_SECOND": "30",
        "AGENT_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    worker = CeleryWorker(env=env, log=tmp_path / "worker.log")
    yield worker
    worker.stop()


@pytest.fixture
def helper(acme: Workspace) -> Iterator[Agent]:
    def create() -> Agent:
        with schema_context(acme.schema_name):
            return Agent.objects.create(
                name="Task helper", slug="task-helper", tools=["create_task"], max_steps=20
            )

    agent = run_committed(create)
    yield agent

    def remove() -> None:
        with schema_context(acme.schema_name):
            AgentRun.objects.filter(agent=agent).delete()
            Task.objects.all().delete()
            ToolAudit.objects.all().delete()
            agent.delete()

    run_committed(remove)


def _state(acme: Workspace, run_id: int) -> dict[str, Any]:
    def load() -> dict[str, Any]:
        with schema_context(acme.schema_name):
            run = AgentRun.objects.get(pk=run_id)
            return {
                "status": run.status,
                "step": run.step,
                "attempts": run.attempts,
                "cost": run.cost_micros,
                "tasks": Task.objects.count(),
                "executions": ToolAudit.objects.filter(tool="create_task", status="ok").count(),
            }

    return run_committed(load)


def _wait(acme: Workspace, run_id: int, until: Any, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _state(acme, run_id)
        if until(state):
            return state
        time.sleep(0.05)
    pytest.fail(f"run {run_id} never reached the state; last: {state}")


def test_a_run_survives_its_worker_being_killed_twice(
    acme: Workspace, member: User, helper: Agent, slow_worker: CeleryWorker, settings: Any
) -> None:
    settings.AGENT_RUN_LEASE_SECONDS = LEASE_SECONDS  # the janitor's view of the lease

    def start() -> AgentRun:
        with schema_context(acme.schema_name):
            membership = membership_get(workspace=acme, user=member)
            assert membership is not None
            return run_start(
                workspace=acme, membership=membership, agent=helper,
                task="Please create_task for ten tasks about the spring kiln firing",
            )  # fmt: skip

    slow_worker.start()
    run = run_committed(start)
    for kill_at in (2, 6):
        _wait(acme, run.pk, lambda s, n=kill_at: s["step"] >= n)
        assert slow_worker.process is not None
        slow_worker.process.kill()  # SIGKILL: no warm shutdown, the message is not acked
        slow_worker.process.wait()
        slow_worker.process = None
        time.sleep(LEASE_SECONDS + 0.5)  # the dead worker's lease expires
        slow_worker.start(purge=False)
        assert run_committed(runs_janitor) == 1  # what the beat task does every 5 s

    done = _wait(acme, run.pk, lambda s: s["status"] not in ("queued", "running"))

    assert done["status"] == "succeeded", slow_worker.output()[-3000:]
    assert (done["tasks"], done["executions"]) == (10, 10)
    assert done["attempts"] >= 3  # started, then resumed after each kill
