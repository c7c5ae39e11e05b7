"""Support resolves "the AI said something weird" in a real browser: the owner chats in acme,
then the support user logs into /admin/, finds that chat's trace by filtering on the owner's
email and the chat feature, opens it, replays it with another alias and sees the diff."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import Page, expect

from apps.agents.models import Conversation
from apps.traces.models import LlmCallLog, TraceAccess
from apps.traces.rollups import rollups_rebuild
from apps.traces.services import call_records_flush
from apps.workspaces.models import User, Workspace
from tests.asgi_server import AsgiServer, run_committed
from tests.factories import PASSWORD, UserFactory
from tests.gateway_support import forget_redis_keys

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

OWNER = "owner@acme.test"
SUPPORT = "support-e2e@aisaas.test"


def _log_in(page: Page, email: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()


@pytest.fixture
def support_user() -> Iterator[None]:
    """A committed support user (daphne sees committed rows only); afterwards everything this
    test left is removed: the owner's chats and calls (and their rollup counts), the replays
    and the platform workspace."""
    started: datetime = timezone.now()

    def create() -> bool:
        user = UserFactory.create(email=SUPPORT, is_staff=True)
        user.groups.add(Group.objects.get(name="support"))
        return Workspace.objects.filter(slug=settings.PLATFORM_WORKSPACE).exists()

    platform_existed = run_committed(create)
    yield

    def remove() -> None:
        call_records_flush()
        acme = Workspace.objects.get(slug="acme")
        owner = User.objects.get(email=OWNER)
        with schema_context(acme.schema_name):
            Conversation.objects.filter(user_id=owner.pk).delete()
        LlmCallLog.objects.filter(workspace=acme, created_at__gte=started).delete()
        TraceAccess.objects.filter(user_email=SUPPORT).delete()
        User.objects.filter(email=SUPPORT).delete()
        platform = Workspace.objects.filter(slug=settings.PLATFORM_WORKSPACE).first()
        if platform is not None and not platform_existed:
            forget_redis_keys(f"*{platform.schema_name}*")
            platform.delete()
        # The dashboards' rollups counted the deleted calls: recount the days this test touched.
        rollups_rebuild(since=started.date(), until=timezone.now().date() + timedelta(days=1))

    run_committed(remove)


def test_support_finds_the_owners_chat_replays_it_with_another_alias_and_sees_the_diff(
    live_server_asgi: AsgiServer, page: Page, support_user: None
) -> None:
    # the owner asks something in acme's chat
    question = f"Why did my invoice double ({uuid.uuid4().hex[:6]})?"
    page.goto(live_server_asgi.url("/chat/", workspace="acme"))
    _log_in(page, OWNER)
    page.get_by_test_id("new-chat").click()
    page.get_by_test_id("composer-input").fill(question)
    page.get_by_test_id("composer-input").press("Enter")
    answer = page.get_by_test_id("message-assistant").last
    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)
    run_committed(call_records_flush)  # what beat does every two seconds

    # support logs into the admin and filters on the owner's email and the chat feature
    page.context.clear_cookies()
    page.goto(live_server_asgi.url("/admin/"))
    _log_in_admin(page)
    page.get_by_role("link", name="Llm traces").click()
    page.get_by_label("user email contains").fill(OWNER)
    page.get_by_label("user email contains").press("Enter")
    page.get_by_label("e.g. chat or chat*").fill("chat")
    page.get_by_label("e.g. chat or chat*").press("Enter")
    expect(page.locator("#result_list")).to_contain_text("chat")

    # the newest row is the owner's last chat: open it
    page.locator("#result_list tbody tr").first.locator("th a").click()
    expect(page.get_by_test_id("trace-detail")).to_be_visible()
    expect(page.get_by_test_id("bubble-user").last).to_contain_text(question)

    # replay it with another alias: the new answer appears beside the old, with a diff
    page.get_by_test_id("replay-link").click()
    page.get_by_label("Alias").select_option("fast")
    page.get_by_test_id("replay-submit").click()

    expect(page.get_by_test_id("replay-diff")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("replay-summary")).to_contain_text("fast → local/local-fast")
    expect(page.get_by_test_id("replay-original")).not_to_be_empty()
    expect(page.get_by_test_id("replay-answer")).not_to_be_empty()
    assert uuid.UUID(page.get_by_test_id("new-trace-id").inner_text())


def _log_in_admin(page: Page) -> None:
    # /admin/login/ sends staff to the product's login, with its failed-login lockout.
    page.get_by_label("Email").fill(SUPPORT)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
