"""An agent acting in chat, in a real browser (Debian chromium) against daphne with the offline
model (which calls the tools a message names): an admin-made "Task helper" is picked for a new
conversation; the member asks it to create a task; the tool step appears as a card that turns
"ok", the answer follows, the card survives a reload, and the task is on the Tasks page."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django_tenants.utils import schema_context
from playwright.sync_api import Page, expect

from apps.agents.models import Agent, Conversation, Task, ToolAudit
from apps.workspaces.models import User
from tests.asgi_server import AsgiServer, run_committed
from tests.factories import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

MEMBER = "member@acme.test"


@pytest.fixture
def task_helper() -> Iterator[str]:
    name = f"Task helper {uuid.uuid4().hex[:6]}"

    def create() -> None:
        with schema_context("acme"):
            Agent.objects.create(
                name=name, slug=name.lower().replace(" ", "-"), tools=["list_tasks", "create_task"]
            )

    run_committed(create)
    yield name

    def remove() -> None:
        with schema_context("acme"):
            agent = Agent.objects.get(name=name)
            member = User.objects.get(email=MEMBER)
            Conversation.objects.filter(agent=agent, user_id=member.pk).delete()
            Task.objects.filter(created_by_agent=agent).delete()
            ToolAudit.objects.filter(agent_id=agent.pk).delete()
            agent.delete()

    run_committed(remove)


def test_a_tool_step_streams_as_a_card_and_its_task_is_real(
    live_server_asgi: AsgiServer, page: Page, task_helper: str
) -> None:
    page.goto(live_server_asgi.url("/chat/", workspace="acme"))
    page.get_by_label("Email").fill(MEMBER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()

    # the member picks the agent for a new conversation
    page.get_by_test_id("agent-picker").select_option(label=task_helper)
    page.get_by_test_id("new-chat").click()
    expect(page.get_by_test_id("conversation-agent")).to_have_text(task_helper)

    box = page.get_by_test_id("composer-input")
    box.fill("Please create_task for the kiln inspection")
    box.press("Enter")

    answer = page.get_by_test_id("message-assistant").last
    card = answer.get_by_test_id("tool-step")
    expect(card).to_have_attribute("data-tool", "create_task")
    expect(card).to_have_attribute("data-status", "ok", timeout=30_000)
    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(answer.get_by_test_id("message-body")).to_contain_text("create_task")
    card.locator("summary").click()  # collapsible: the arguments are inside
    expect(card.locator(".tool-args")).to_contain_text("title")

    # after a reload the step is still shown with the answer
    page.reload()
    again = page.get_by_test_id("message-assistant").last.get_by_test_id("tool-step")
    expect(again).to_have_attribute("data-status", "ok")

    # and the task exists on the Tasks page
    page.goto(live_server_asgi.url("/tasks/", workspace="acme"))
    expect(page.get_by_text(task_helper).first).to_be_visible()
