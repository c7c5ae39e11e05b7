"""Long runs in-process (the worker's own code, without Celery): a run works through its task
step by step, storing its state after each; the lease is fenced (a second worker skips, a
stale one cannot write); a resumed run replays calls that ran before the crash instead of
repeating them; cancel, the step cap and the cost cap end it keeping the partial work;
a held call parks it until the decision. Committed rows (the executor uses its own database
threads), removed after each test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core import mail
from django.utils import timezone
from django_tenants.utils import schema_context

from apps.agents.models import Agent, AgentRun, RunEvent, Task, ToolAudit
from apps.agents.runs.executor import run_execute
from apps.agents.runs.services import run_cancel, run_start, runs_janitor
from apps.approvals.models import PendingAction
from apps.approvals.services import action_decide
from apps.common.errors import ApplicationError
from apps.workspaces.models import User, Workspace
from apps.workspaces.selectors import membership_get
from tests.asgi_server import run_committed
from tests.gateway_support import gateway_settings

pytestmark = pytest.mark.django_db

Status = AgentRun.Status


@pytest.fixture
def helper(acme: Workspace) -> Iterator[Agent]:
    def create() -> Agent:
        with schema_context(acme.schema_name):
            return Agent.objects.create(
                name="Task helper",
                slug="task-helper",
                tools=["list_tasks", "create_task", "delete_task"],
                max_steps=20,
            )

    agent = run_committed(create)
    with gateway_settings():
        yield agent

    def remove() -> None:
        with schema_context(acme.schema_name):
            AgentRun.objects.filter(agent=agent).delete()
            Task.objects.all().delete()
            ToolAudit.objects.all().delete()
            PendingAction.objects.all().delete()
            agent.delete()

    run_committed(remove)


def _start(acme: Workspace, user: User, agent: Agent, task: str, **caps: Any) -> AgentRun:
    def start() -> AgentRun:
        with schema_context(acme.schema_name):
            membership = membership_get(workspace=acme, user=user)
            assert membership is not None
            return run_start(workspace=acme, membership=membership, agent=agent, task=task, **caps)

    return run_committed(start)


def _in_acme(acme: Workspace, query: Any) -> Any:
    def run() -> Any:
        with schema_context(acme.schema_name):
            return query()

    return run_committed(run)


def _run(acme: Workspace, run: AgentRun, owner: str = "worker-a") -> str:
    return async_to_sync(run_execute)(workspace=acme, run_id=run.pk, owner=owner)


def test_a_run_works_through_its_task_step_by_step(
    acme: Workspace, member: User, helper: Agent
) -> None:
    run = _start(acme, member, helper, "Please create_task for three tasks about the kiln")

    assert _run(acme, run) == Status.SUCCEEDED

    done = _in_acme(acme, lambda: AgentRun.objects.get(pk=run.pk))
    assert (done.status, done.step, done.attempts) == ("succeeded", 3, 1)
    assert done.result  # the final answer
    assert done.cost_micros >= 0
    assert done.state["pending"] == []
    assert _in_acme(acme, lambda: Task.objects.count()) == 3
    kinds = _in_acme(
        acme, lambda: list(RunEvent.objects.filter(run_id=run.pk).values_list("kind", "status"))
    )
    assert kinds[0] == ("status", "queued")
    assert kinds.count(("tool", "ok")) == 3
    assert kinds.count(("model", "tool_calls")) == 3
    assert kinds[-1] == ("status", "succeeded")


def test_a_second_worker_skips_and_a_finished_run_is_not_run_again(
    acme: Workspace, member: User, helper: Agent
) -> None:
    run = _start(acme, member, helper, "Please create_task for two tasks")

    def hold_lease() -> None:
        AgentRun.objects.filter(pk=run.pk).update(
            status=Status.RUNNING, lease_owner="worker-a", lease_token=1,
            lease_expires_at=timezone.now() + timedelta(seconds=60),
        )  # fmt: skip

    _in_acme(acme, hold_lease)
    assert _run(acme, run, owner="worker-b") == "skipped"
    _in_acme(
        acme,
        lambda: AgentRun.objects.filter(pk=run.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        ),
    )
    assert _run(acme, run, owner="worker-b") == Status.SUCCEEDED
    assert _run(acme, run, owner="worker-c") == "skipped"
    assert _in_acme(acme, lambda: Task.objects.count()) == 2


def test_a_resumed_run_replays_the_call_that_ran_before_the_crash(
    acme: Workspace, member: User, helper: Agent
) -> None:
    """A worker died after a tool committed but before its checkpoint was stored: the stored
    state still lists the call as pending. The next worker calls it again with the same
    idempotency key and gets the stored result: one task, one execution."""
    run = _start(acme, member, helper, "Please create_task for two tasks about glaze")
    assert _run(acme, run) == Status.SUCCEEDED
    first_state = _in_acme(acme, lambda: RunEvent.objects.filter(run_id=run.pk).count())
    assert first_state > 0

    # rewind the run to its checkpoint after step 1's model call (its call pending again)
    def rewind() -> None:
        stored = AgentRun.objects.get(pk=run.pk)
        messages = stored.state["messages"]
        cut = next(i for i, m in enumerate(messages) if m["role"] == "tool")
        call = messages[cut - 1]["tool_calls"][0]
        AgentRun.objects.filter(pk=run.pk).update(
            status=Status.RUNNING, step=1, lease_owner="", lease_expires_at=None,
            state={"step": 1, "messages": messages[:cut], "pending": [call]},
            result="", finished_at=None,
        )  # fmt: skip

    _in_acme(acme, rewind)
    assert _run(acme, run, owner="worker-b") == Status.SUCCEEDED

    assert _in_acme(acme, lambda: Task.objects.count()) == 2
    executions = _in_acme(
        acme, lambda: ToolAudit.objects.filter(tool="create_task", status="ok").count()
    )
    assert executions == 2
    done = _in_acme(acme, lambda: AgentRun.objects.get(pk=run.pk))
    assert (done.status, done.attempts) == ("succeeded", 2)


def test_a_worker_that_lost_its_lease_cannot_write(
    acme: Workspace, member: User, helper: Agent
) -> None:
    from apps.agents.runs import executor

    run = _start(acme, member, helper, "Please create_task for two tasks")
    lease = async_to_sync(executor._acquire)(acme, run.pk, "worker-a")
    assert lease is not None
    # the janitor gave the run to another worker, which took a newer token
    _in_acme(acme, lambda: AgentRun.objects.filter(pk=run.pk).update(lease_token=lease.token + 1))

    wrote = async_to_sync(executor._write)(acme, lease, None, step=7)

    assert (wrote, lease.lost) == (False, True)
    assert _in_acme(acme, lambda: AgentRun.objects.get(pk=run.pk).step) == 0


def test_the_janitor_requeues_runs_whose_lease_expired(
    acme: Workspace, member: User, helper: Agent
) -> None:
    run = _start(acme, member, helper, "Please create_task for two tasks")
    _in_acme(acme, lambda: AgentRun.objects.filter(pk=run.pk).update(
        status=Status.RUNNING, lease_owner="dead-worker", lease_token=3,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    ))  # fmt: skip

    assert run_committed(runs_janitor) == 1
    assert run_committed(runs_janitor) == 0  # the grace lease: not queued twice
    assert _run(acme, run, owner="worker-b") == Status.SUCCEEDED
    assert _in_acme(acme, lambda: AgentRun.objects.get(pk=run.pk).lease_token) == 4


def test_the_step_cap_ends_the_run_keeping_its_work_and_tells_the_starter(
    acme: Workspace, member: User, helper: Agent
) -> None:
    run = _start(acme, member, helper, "Please create_task for ten tasks", max_steps=3)

    assert _run(acme, run) == Status.FAILED_STEPS

    done = _in_acme(acme, lambda: AgentRun.objects.get(pk=run.pk))
    assert done.status == "failed_step_limit"
    assert "step cap" in done.error
    assert _in_acme(acme, lambda: Task.objects.count()) == 3  # the partial work stays
    [email] = [m for m in mail.outbox if member.email in m.to]
    assert "stopped at its step cap" in email.subject


def test_the_cost_cap_ends_the_run_before_it_spends_past_it(
    acme: Workspace, member: User, helper: Agent
) -> None:
    run = _start(acme, member, helper, "Please create_task for ten tasks", max_cost_micros=1)

    assert _run(acme, run) == Status.FAILED_BUDGET

    done = _in_acme(acme, lambda: AgentRun.objects.get(pk=run.pk))
    assert done.status == "failed_budget_exceeded"
    assert done.cost_micros <= 1


def test_cancel_ends_queued_runs_at_once_and_a_finished_run_has_nothing_to_cancel(
    acme: Workspace, member: User, helper: Agent
) -> None:
    queued = _start(acme, member, helper, "Please create_task for two tasks")

    def cancel(run: AgentRun) -> AgentRun:
        membership = membership_get(workspace=acme, user=member)
        assert membership is not None
        return run_cancel(membership=membership, run=run)

    assert _in_acme(acme, lambda: cancel(queued)).status == Status.CANCELLED
    assert _run(acme, queued) == "skipped"
    with pytest.raises(ApplicationError, match="already was cancelled"):
        _in_acme(acme, lambda: cancel(queued))
    assert _in_acme(acme, lambda: Task.objects.count()) == 0


def test_a_held_call_parks_the_run_and_the_decision_requeues_it(
    acme: Workspace,
    member: User,
    owner: User,
    helper: Agent,
    django_capture_on_commit_callbacks: Any,
) -> None:
    task = _in_acme(acme, lambda: Task.objects.create(title="Old", created_by_id=member.pk))
    run = _start(acme, member, helper, f"Please delete_task {task.pk}")

    assert _run(acme, run) == Status.WAITING
    parked = _in_acme(acme, lambda: AgentRun.objects.get(pk=run.pk))
    assert (parked.status, parked.lease_owner, parked.lease_expires_at) == ("waiting", "", None)
    assert parked.state["pending"][0]["arguments"] == {"id": task.pk}

    def approve() -> None:
        membership = membership_get(workspace=acme, user=owner)
        assert membership is not None
        action = PendingAction.objects.get()
        assert (action.resume_kind, action.resume_ref) == ("run", str(run.pk))
        action_decide(
            workspace=acme, membership=membership, public_id=action.public_id, approve=True
        )

    _in_acme(acme, approve)  # its commit queues the run again (resume hook)
    assert _in_acme(acme, lambda: AgentRun.objects.get(pk=run.pk).status) == Status.QUEUED
    assert _run(acme, run, owner="worker-b") == Status.SUCCEEDED
    assert not _in_acme(acme, lambda: Task.objects.filter(pk=task.pk).exists())
    assert (
        _in_acme(acme, lambda: ToolAudit.objects.filter(tool="delete_task", status="ok").count())
        == 1
    )


def test_bad_runs_are_refused_before_they_start(
    acme: Workspace, member: User, helper: Agent
) -> None:
    bare = _in_acme(acme, lambda: Agent.objects.create(name="Chatty", slug="chatty"))
    cases = [
        (helper, "", {}, "Describe the task"),
        (bare, "do it", {}, "has no tools"),
        (helper, "do it", {"max_steps": 0}, "step cap must be a whole number from 1 to 20"),
        (helper, "do it", {"max_cost_micros": 0}, "cost cap must be a positive"),
    ]
    for agent, task, caps, message in cases:
        with pytest.raises(ApplicationError, match=message):
            _start(acme, member, agent, task, **caps)
    assert _in_acme(acme, lambda: AgentRun.objects.count()) == 0
    _in_acme(acme, bare.delete)
