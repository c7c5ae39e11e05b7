"""Approvals in chat, through the whole stack: the member's socket, the gateway's offline
model, the tool runner, a real Celery worker and the channel layer. A held call parks the
answer ("waiting", nothing held); the decision's commit queues the resume; the member's
socket sees the answer continue — the approved call run once, or the model told it was
rejected. The worker may be down when the decision is made (a restart): it runs the resume
when it comes back, once, however many times "approve" was pressed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django_tenants.utils import schema_context

from apps.agents.chat.services import conversation_create
from apps.agents.models import Agent, Conversation, Message, Task, ToolAudit
from apps.approvals.models import PendingAction
from apps.approvals.services import action_decide
from apps.common.errors import ApplicationError
from apps.workspaces.models import User, Workspace
from apps.workspaces.selectors import membership_get
from tests.agents.test_chat_consumer import socket, until
from tests.asgi_server import run_committed
from tests.common.conftest import CeleryWorker
from tests.gateway_support import gateway_settings

pytestmark = pytest.mark.django_db  # committed rows via run_committed, removed after


@pytest.fixture
def delete_turn(acme: Workspace, member: User) -> Iterator[tuple[Conversation, Task]]:
    def create() -> tuple[Conversation, Task]:
        with schema_context(acme.schema_name):
            agent = Agent.objects.create(
                name="Task helper", slug="task-helper", tools=["list_tasks", "delete_task"]
            )
            task = Task.objects.create(title="Old invoices", created_by_id=member.pk)
            return conversation_create(user=member, agent=agent), task

    found = run_committed(create)
    yield found

    def remove() -> None:
        with schema_context(acme.schema_name):
            Conversation.objects.filter(pk=found[0].pk).delete()
            Task.objects.all().delete()
            ToolAudit.objects.all().delete()
            PendingAction.objects.all().delete()
            Agent.objects.filter(slug="task-helper").delete()

    run_committed(remove)


async def _ask_to_delete(conversation: Conversation, task: Task, cookie: str) -> list[dict]:
    ws = socket("acme.localhost", cookie)
    connected, _ = await ws.connect()
    assert connected
    text = f"Please delete_task {task.pk}, it is obsolete."
    await ws.send_json_to({"type": "send", "conversation": conversation.pk, "text": text})
    events = await until(ws, "done")
    await ws.disconnect()
    return events


def _decide(workspace: Workspace, user: User, approve: bool) -> PendingAction:
    def run() -> PendingAction:
        with schema_context(workspace.schema_name):
            membership = membership_get(workspace=workspace, user=user)
            assert membership is not None
            action = PendingAction.objects.get()
            return action_decide(
                workspace=workspace,
                membership=membership,
                public_id=action.public_id,
                approve=approve,
                note="" if approve else "Keep it for the audit.",
            )

    return run_committed(run)


def _state(workspace: Workspace, conversation: Conversation) -> dict[str, Any]:
    def load() -> dict[str, Any]:
        with schema_context(workspace.schema_name):
            answer = Message.objects.filter(conversation_id=conversation.pk, role="assistant").get()
            return {
                "status": answer.status,
                "state": answer.agent_state,
                "steps": answer.steps,
                "content": answer.content,
                "tasks": Task.objects.count(),
                "executions": ToolAudit.objects.filter(tool="delete_task", status="ok").count(),
                "audit": list(ToolAudit.objects.order_by("pk").values_list("status", flat=True)),
                "action": PendingAction.objects.values("status", "executed").get(),
            }

    return run_committed(load)


@pytest.mark.asyncio
async def test_the_answer_waits_then_continues_when_the_owner_approves(
    acme: Workspace,
    member_cookie: str,
    owner: User,
    delete_turn: tuple[Conversation, Task],
    celery_worker: CeleryWorker,
) -> None:
    conversation, task = delete_turn
    with gateway_settings():
        events = await _ask_to_delete(conversation, task, member_cookie)

        [held] = [e for e in events if e["type"] == "tool_result"]
        assert (held["name"], held["status"]) == ("delete_task", "awaiting_approval")
        assert events[-1]["status"] == "waiting"
        assert 'data-testid="approval"' in events[-1]["steps_html"]
        assert "waiting for approval" in events[-1]["steps_html"]
        parked = await _sync(_state, acme, conversation)
        assert (parked["status"], parked["tasks"], parked["executions"]) == ("waiting", 1, 0)
        assert parked["state"]["held"][0]["arguments"] == {"id": task.pk}

        watcher = socket("acme.localhost", member_cookie)  # the member's page, still open
        assert (await watcher.connect())[0]
        await _sync(_decide, acme, owner, True)
        resumed = await until(watcher, "done", timeout=60)
        await watcher.disconnect()

    kinds = [e["type"] for e in resumed]
    assert kinds[0] == "resumed"
    assert all(e["resumed"] == held["message_id"] for e in resumed)
    [ran] = [e for e in resumed if e["type"] == "tool_result"]
    assert (ran["call_id"], ran["status"]) == (held["call_id"], "ok")
    assert "token" in kinds
    assert resumed[-1]["status"] == "complete"
    done = await _sync(_state, acme, conversation)
    assert (done["status"], done["tasks"], done["executions"], done["state"]) == (
        "complete", 0, 1, None,
    )  # fmt: skip
    assert [s["status"] for s in done["steps"]] == ["ok"]  # the held card, now run
    assert done["audit"] == ["awaiting_approval", "ok"]  # request, then execution
    assert done["action"]["status"] == "executed"


@pytest.mark.asyncio
async def test_a_rejection_tells_the_model_and_nothing_runs(
    acme: Workspace,
    member_cookie: str,
    owner: User,
    delete_turn: tuple[Conversation, Task],
    celery_worker: CeleryWorker,
) -> None:
    conversation, task = delete_turn
    with gateway_settings():
        await _ask_to_delete(conversation, task, member_cookie)
        watcher = socket("acme.localhost", member_cookie)
        assert (await watcher.connect())[0]
        await _sync(_decide, acme, owner, False)
        resumed = await until(watcher, "done", timeout=60)
        await watcher.disconnect()

    [refused] = [e for e in resumed if e["type"] == "tool_result"]
    assert refused["status"] == "rejected"
    assert "Keep it for the audit." in refused["summary"]
    done = await _sync(_state, acme, conversation)
    assert (done["status"], done["tasks"], done["executions"]) == ("complete", 1, 0)
    assert done["audit"] == ["awaiting_approval", "rejected"]


@pytest.mark.asyncio
async def test_an_approval_made_while_the_worker_is_down_runs_once_when_it_is_back(
    acme: Workspace,
    member_cookie: str,
    owner: User,
    delete_turn: tuple[Conversation, Task],
    celery_worker_process: CeleryWorker,
    no_celery_worker: None,
) -> None:
    conversation, task = delete_turn
    with gateway_settings():
        await _ask_to_delete(conversation, task, member_cookie)  # the socket closes after

    await _sync(_decide, acme, owner, True)
    with pytest.raises(ApplicationError, match="already approved"):
        await _sync(_decide, acme, owner, True)  # clicked twice, or delivered twice
    assert (await _sync(_state, acme, conversation))["status"] == "waiting"

    watcher = socket("acme.localhost", member_cookie)  # a new page after the restart
    assert (await watcher.connect())[0]
    await _sync(lambda: celery_worker_process.start(purge=False))
    try:
        await until(watcher, "done", timeout=60)
    finally:
        await watcher.disconnect()
        await _sync(celery_worker_process.stop)
    done = await _sync(_state, acme, conversation)
    assert (done["status"], done["tasks"], done["executions"]) == ("complete", 0, 1)
    assert done["action"]["status"] == "executed"


async def _sync(func: Any, *args: Any) -> Any:
    from asgiref.sync import sync_to_async

    return await sync_to_async(func, thread_sensitive=False)(*args)
