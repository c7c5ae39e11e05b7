"""Approvals in real browsers (Debian chromium) against daphne, a Celery worker and the
offline model: the owner sets delete_task to L3 for the Task helper on the autonomy page; a
member asks the helper to delete a task; the member's chat shows the pending action with its
exact arguments while the owner's badge lights up live on another page; the owner approves in
the inbox and the member's answer continues; the audit log shows request, decision and
execution. A rejection, the other way round, leaves the task and tells the member."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django_tenants.utils import schema_context
from playwright.sync_api import Browser, Page, expect

from apps.agents.models import Agent, Conversation, Task, ToolAudit
from apps.approvals.models import AutonomyRule, PendingAction, PolicyChange
from apps.workspaces.models import User
from tests.asgi_server import AsgiServer, run_committed
from tests.common.conftest import CeleryWorker, worker_env
from tests.factories import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

MEMBER, OWNER = "member@acme.test", "owner@acme.test"


@pytest.fixture(scope="module")
def resume_worker(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryWorker]:
    """The worker that resumes answers once their actions are decided."""
    worker = CeleryWorker(env=worker_env(), log=tmp_path_factory.mktemp("celery") / "worker.log")
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def helper_and_task() -> Iterator[tuple[str, int]]:
    name = f"Task helper {uuid.uuid4().hex[:6]}"

    def create() -> tuple[str, int]:
        with schema_context("acme"):
            Agent.objects.create(
                name=name,
                slug=name.lower().replace(" ", "-"),
                tools=["list_tasks", "create_task", "delete_task"],
            )
            member = User.objects.get(email=MEMBER)
            task = Task.objects.create(title="Old kiln log", created_by_id=member.pk)
            return name, task.pk

    found = run_committed(create)
    yield found

    def remove() -> None:
        with schema_context("acme"):
            agent = Agent.objects.get(name=name)
            Conversation.objects.filter(agent=agent).delete()
            Task.objects.filter(pk=found[1]).delete()
            ToolAudit.objects.filter(agent_id=agent.pk).delete()
            PendingAction.objects.filter(agent_id=agent.pk).delete()
            AutonomyRule.objects.filter(agent_id=agent.pk).delete()
            PolicyChange.objects.filter(agent_id=agent.pk).delete()
            agent.delete()

    run_committed(remove)


def _log_in(page: Page, server: AsgiServer, email: str, path: str) -> None:
    page.goto(server.url(path, workspace="acme"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()


def _ask(page: Page, server: AsgiServer, agent: str, task_id: int) -> None:
    _log_in(page, server, MEMBER, "/chat/")
    page.get_by_test_id("agent-picker").select_option(label=agent)
    page.get_by_test_id("new-chat").click()
    expect(page.get_by_test_id("conversation-agent")).to_have_text(agent)
    box = page.get_by_test_id("composer-input")
    box.fill(f"Please delete_task {task_id}, the log is archived.")
    box.press("Enter")


def _task_exists(task_id: int) -> bool:
    def check() -> bool:
        with schema_context("acme"):
            return Task.objects.filter(pk=task_id).exists()

    return run_committed(check)


def test_the_owner_approves_live_and_the_members_answer_continues(
    live_server_asgi: AsgiServer,
    page: Page,
    browser: Browser,
    resume_worker: CeleryWorker,
    helper_and_task: tuple[str, int],
) -> None:
    agent, task_id = helper_and_task
    owner = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()

    # the owner sets delete_task to L3 for the helper, with a reason
    _log_in(owner, live_server_asgi, OWNER, "/agents/autonomy/")
    section = owner.get_by_test_id("autonomy-agent").filter(has_text=agent)
    row = section.locator('[data-testid="autonomy-row"][data-tool="delete_task"]')
    row.get_by_test_id("autonomy-select").select_option("3")
    row.get_by_test_id("autonomy-reason").fill("deleting is for good")
    row.get_by_test_id("autonomy-save").click()
    expect(owner.get_by_test_id("autonomy-change").first).to_contain_text("deleting is for good")
    owner.goto(live_server_asgi.url("/tasks/", workspace="acme"))  # any page; its badge is live
    badge = owner.get_by_test_id("approvals-badge")
    expect(badge).to_be_hidden()

    # the member asks; the answer waits with the exact call shown
    _ask(page, live_server_asgi, agent, task_id)
    answer = page.get_by_test_id("message-assistant").last
    expect(answer).to_have_attribute("data-status", "waiting", timeout=30_000)
    approval = answer.get_by_test_id("approval")
    expect(approval.get_by_test_id("approval-status")).to_have_text("waiting for approval")
    expect(approval.get_by_test_id("approval-args")).to_contain_text(str(task_id))
    expect(approval.get_by_test_id("approve")).to_have_count(0)  # members don't decide
    assert _task_exists(task_id)

    # the owner's badge lit up without a reload; the owner approves in the inbox
    expect(badge).to_have_text("1", timeout=10_000)
    owner.get_by_test_id("nav-approvals").click()
    card = owner.get_by_test_id("approval").first
    expect(card).to_contain_text(agent)
    card.get_by_test_id("approve").click()
    expect(owner.locator('[data-testid="approval"][data-status="approved"]')).to_have_count(1)

    # the member's answer continues on its own
    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(answer.get_by_test_id("tool-step").first).to_have_attribute("data-status", "ok")
    expect(answer.get_by_test_id("message-body")).to_contain_text("delete_task")
    assert not _task_exists(task_id)
    expect(badge).to_be_hidden(timeout=10_000)

    # the audit log: the request, the decision, the execution
    owner.goto(live_server_asgi.url("/agents/audit/", workspace="acme"))
    rows = owner.get_by_test_id("audit-row")
    expect(rows.nth(0)).to_have_attribute("data-status", "ok")
    expect(rows.nth(0).get_by_test_id("audit-approval")).to_contain_text(f"executed by {OWNER}")
    expect(rows.nth(1)).to_have_attribute("data-status", "awaiting_approval")
    owner.context.close()


def test_a_rejection_leaves_the_task_and_the_member_is_told(
    live_server_asgi: AsgiServer,
    page: Page,
    browser: Browser,
    resume_worker: CeleryWorker,
    helper_and_task: tuple[str, int],
) -> None:
    agent, task_id = helper_and_task  # delete_task is destructive: L3 by default
    _ask(page, live_server_asgi, agent, task_id)
    answer = page.get_by_test_id("message-assistant").last
    expect(answer).to_have_attribute("data-status", "waiting", timeout=30_000)

    owner = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    _log_in(owner, live_server_asgi, OWNER, "/approvals/")
    card = owner.get_by_test_id("approval").first
    card.get_by_role("textbox", name="Note").fill("keep the log")
    card.get_by_test_id("reject").click()
    expect(owner.locator('[data-testid="approval"][data-status="rejected"]')).to_have_count(1)

    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)
    step = answer.get_by_test_id("tool-step").first
    expect(step).to_have_attribute("data-status", "rejected")
    expect(step).to_contain_text("keep the log")
    assert _task_exists(task_id)
    owner.context.close()
