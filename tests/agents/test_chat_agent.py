"""An agent with tools in chat, through the whole ASGI stack with the offline model (which calls
the tools a message names): each step streams as `tool_call` / `tool_result`, the task really
exists afterwards, the steps are stored with the answer, the audit log has the row; the step
cap ends a runaway loop; a paused agent answers nobody."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from channels.db import database_sync_to_async
from django_tenants.utils import schema_context

from apps.agents.chat.services import conversation_create
from apps.agents.models import Agent, Conversation, Task, ToolAudit
from apps.traces.models import LlmCallLog
from apps.traces.services import call_records_flush
from apps.workspaces.models import User, Workspace
from tests.agents.test_chat_consumer import socket, stored, until
from tests.asgi_server import run_committed
from tests.gateway_support import gateway_settings, unique

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent_conversation(acme: Workspace, member: User) -> Iterator[Conversation]:
    def create() -> Conversation:
        with schema_context(acme.schema_name):
            agent = Agent.objects.create(
                name="Task helper", slug="task-helper", tools=["list_tasks", "create_task"]
            )
            return conversation_create(user=member, agent=agent)

    found = run_committed(create)
    yield found

    def remove() -> None:
        with schema_context(acme.schema_name):
            Conversation.objects.filter(pk=found.pk).delete()
            Task.objects.all().delete()
            ToolAudit.objects.all().delete()  # committed rows: other tests count theirs
            Agent.objects.filter(slug="task-helper").delete()

    run_committed(remove)


def _set_agent(workspace: Workspace, **fields: object) -> None:
    def update() -> None:
        with schema_context(workspace.schema_name):
            Agent.objects.filter(slug="task-helper").update(**fields)

    run_committed(update)


async def _turn(conversation: Conversation, cookie: str, text: str) -> list[dict]:
    with gateway_settings():
        ws = socket("acme.localhost", cookie)
        connected, _ = await ws.connect()
        assert connected
        await ws.send_json_to({"type": "send", "conversation": conversation.pk, "text": text})
        events = await until(ws, "done")
        await ws.disconnect()
    return events


@pytest.mark.asyncio
async def test_the_agent_calls_a_tool_and_each_step_streams(
    acme: Workspace, member: User, member_cookie: str, agent_conversation: Conversation
) -> None:
    events = await _turn(
        agent_conversation, member_cookie, unique("Please create_task: order clay")
    )

    kinds = [e["type"] for e in events]
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("token")
    [call] = [e for e in events if e["type"] == "tool_call"]
    [result] = [e for e in events if e["type"] == "tool_result"]
    assert (call["name"], result["name"], result["status"]) == ("create_task", "create_task", "ok")
    assert result["call_id"] == call["call_id"]
    done = events[-1]
    assert done["status"] == "complete"
    assert 'data-tool="create_task"' in done["steps_html"]

    def check() -> None:
        with schema_context(acme.schema_name):
            task = Task.objects.get()
            assert task.title == call["args"]["title"]
            assert task.created_by_id == member.pk
            audit = ToolAudit.objects.get(tool="create_task")
            assert audit.trace_id is not None  # the model call that asked for it
            assert (audit.status, audit.via, audit.conversation_id) == (
                "ok",
                "chat",
                agent_conversation.pk,
            )

    await database_sync_to_async(run_committed)(check)
    _question, answer = await database_sync_to_async(stored)(acme, agent_conversation)
    assert [s["name"] for s in answer.steps] == ["create_task"]
    assert "create_task" in answer.content  # the model reported the result


@pytest.mark.asyncio
async def test_the_step_cap_ends_the_loop_with_a_clear_error(
    acme: Workspace, member_cookie: str, agent_conversation: Conversation
) -> None:
    _set_agent(acme, max_steps=1)
    events = await _turn(agent_conversation, member_cookie, unique("list_tasks please"))

    assert [e["status"] for e in events if e["type"] == "tool_result"] == ["ok"]
    errors = [e for e in events if e["type"] == "error"]
    assert "stopped after 1 steps" in errors[0]["message"]
    assert events[-1]["status"] == "error"


@pytest.mark.asyncio
async def test_a_paused_agent_refuses_the_message_and_stores_nothing(
    acme: Workspace, member_cookie: str, agent_conversation: Conversation
) -> None:
    _set_agent(acme, status="paused")
    with gateway_settings():
        ws = socket("acme.localhost", member_cookie)
        await ws.connect()
        await ws.send_json_to({"type": "send", "conversation": agent_conversation.pk, "text": "hi"})
        [event] = await until(ws, "error")
        await ws.disconnect()

    assert "paused" in event["message"]
    assert await database_sync_to_async(stored)(acme, agent_conversation) == []


@pytest.mark.asyncio
async def test_stop_after_a_tool_step_closes_the_model_call_and_bills_what_was_produced(
    acme: Workspace, member_cookie: str, agent_conversation: Conversation
) -> None:
    with gateway_settings(LLM_LOCAL_TOKENS_PER_SECOND=40):
        ws = socket("acme.localhost", member_cookie)
        await ws.connect()
        text = unique("Please create_task: write a long essay about glazes " * 5)
        await ws.send_json_to({"type": "send", "conversation": agent_conversation.pk, "text": text})
        seen = await until(ws, "tool_result", timeout=30)
        for _ in range(3):
            seen += await until(ws, "token")
        await ws.send_json_to({"type": "stop"})
        seen += await until(ws, "done")
        await ws.disconnect()

    assert seen[-1]["status"] == "stopped"
    _question, answer = await database_sync_to_async(stored)(acme, agent_conversation)
    assert answer.status == "stopped"
    assert [s["status"] for s in answer.steps] == ["ok"]  # the finished tool step is kept

    def calls() -> list[str]:
        call_records_flush()
        return list(
            LlmCallLog.objects.filter(request_id=answer.request_id)
            .order_by("created_at")
            .values_list("status", flat=True)
        )

    # step 1 (the tool call) finished; step 2 was cancelled and settled
    assert await database_sync_to_async(run_committed)(calls) == ["ok", "cancelled"]
