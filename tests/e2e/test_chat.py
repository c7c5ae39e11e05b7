"""Chat in a real browser (Debian chromium) against daphne, with the offline local model
answering at its realistic pace: the answer grows while it streams, stop really stops it (and
the call log holds the partial usage), a rating survives a reload, model output cannot run
script, and an outsider's socket is refused."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import pytest
from django_tenants.utils import schema_context
from playwright.sync_api import Dialog, Locator, Page, expect

from apps.agents.models import Conversation, Message
from apps.traces.models import LlmCallLog
from apps.traces.services import call_records_flush
from apps.workspaces.models import User, Workspace
from tests.asgi_server import AsgiServer, run_committed
from tests.factories import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

MEMBER = "member@acme.test"


def _log_in(page: Page, server: AsgiServer, email: str, path: str = "/chat/") -> None:
    page.goto(server.url(path, workspace="acme"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()


def _new_conversation(page: Page, server: AsgiServer) -> None:
    _log_in(page, server, MEMBER)
    page.get_by_test_id("new-chat").click()
    expect(page.get_by_test_id("composer-input")).to_be_visible()


def _send(page: Page, text: str) -> None:
    box = page.get_by_test_id("composer-input")
    box.fill(text)
    box.press("Enter")


def _last_answer(page: Page) -> Locator:
    return page.get_by_test_id("message-assistant").last


@pytest.fixture(autouse=True)
def _forget_member_conversations() -> Iterator[None]:
    yield

    def remove() -> None:
        workspace = Workspace.objects.get(slug="acme")
        with schema_context(workspace.schema_name):
            Conversation.objects.filter(user_id=User.objects.get(email=MEMBER).pk).delete()

    run_committed(remove)


def test_an_answer_streams_in_progressively(live_server_asgi: AsgiServer, page: Page) -> None:
    _new_conversation(page, live_server_asgi)

    _send(page, f"Explain how tenant schemas isolate data ({uuid.uuid4().hex[:6]})")

    body = _last_answer(page).get_by_test_id("message-body")
    lengths: list[int] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        lengths.append(len(body.inner_text()))
        if _last_answer(page).get_attribute("data-status") == "complete":
            break
        page.wait_for_timeout(60)
    growing = sorted({n for n in lengths if n > 0})
    assert len(growing) >= 4, lengths  # seen at ≥ 4 sizes while streaming, not all at once
    expect(_last_answer(page)).to_have_attribute("data-status", "complete")
    expect(page.get_by_test_id("model-in-use")).to_contain_text("offline local model")
    # the final render replaced the streamed one: Markdown bold came out as <strong>
    expect(body.locator("strong").first).to_be_visible()
    # and the conversation got a title from the `fast` alias
    expect(page.get_by_test_id("conversation-title")).not_to_have_text("New conversation")


def test_stop_stops_the_stream_and_keeps_the_partial_answer(
    live_server_asgi: AsgiServer, page: Page
) -> None:
    _new_conversation(page, live_server_asgi)
    _send(page, "Write a detailed essay about " + " ".join(["databases"] * 60))
    body = _last_answer(page).get_by_test_id("message-body")
    expect(body).not_to_be_empty()
    expect(page.get_by_test_id("stop")).to_be_visible()

    page.get_by_test_id("stop").click()

    expect(_last_answer(page)).to_have_attribute("data-status", "stopped")
    expect(_last_answer(page).get_by_test_id("message-status")).to_have_text("stopped")
    frozen = body.inner_text()
    page.wait_for_timeout(500)
    assert body.inner_text() == frozen  # nothing arrives after stop
    message_id = int(_last_answer(page).get_attribute("data-message-id") or 0)

    def partial_usage() -> tuple[str, str, int]:
        workspace = Workspace.objects.get(slug="acme")
        with schema_context(workspace.schema_name):
            answer = Message.objects.get(pk=message_id)
        call_records_flush()
        log = LlmCallLog.objects.get(request_id=answer.request_id)
        return answer.status, log.status, log.output_tokens

    status, call_status, tokens = run_committed(partial_usage)
    assert (status, call_status) == ("stopped", "cancelled")
    assert 0 < tokens < 300


def test_a_thumbs_up_survives_a_reload(live_server_asgi: AsgiServer, page: Page) -> None:
    _new_conversation(page, live_server_asgi)
    _send(page, f"Hello there ({uuid.uuid4().hex[:6]})")
    expect(_last_answer(page)).to_have_attribute("data-status", "complete", timeout=20_000)

    _last_answer(page).get_by_test_id("thumb-up").click()
    expect(_last_answer(page).get_by_test_id("thumb-up")).to_have_attribute("aria-pressed", "true")
    page.reload()

    expect(_last_answer(page).get_by_test_id("thumb-up")).to_have_attribute("aria-pressed", "true")
    expect(_last_answer(page).get_by_test_id("thumb-down")).to_have_attribute(
        "aria-pressed", "false"
    )


def test_model_output_cannot_run_script(live_server_asgi: AsgiServer, page: Page) -> None:
    _new_conversation(page, live_server_asgi)
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    # the offline model restates the request's first sentence, payload included
    payload = (
        'Repeat <img src=x onerror="window.__xss=1;alert(1)"> <script>window.__xss=2</script> '
        '<a href="javascript:window.__xss=3">here</a> [click](javascript:window.__xss=4) please'
    )

    _send(page, payload)
    expect(_last_answer(page)).to_have_attribute("data-status", "complete", timeout=20_000)
    page.reload()  # the server-rendered page too
    answer = _last_answer(page)

    assert "onerror" in answer.inner_text() or "script" in answer.inner_text()  # shown as text
    for link in answer.locator("a").all():
        assert not re.match(r"\s*javascript:", link.get_attribute("href") or "", re.I)
    assert page.locator(".msg-body script, .msg-body img, .msg-body [onerror]").count() == 0
    assert page.evaluate("window.__xss") is None
    assert dialogs == []


def test_an_outsider_cannot_open_the_chat_socket(live_server_asgi: AsgiServer, page: Page) -> None:
    _log_in(page, live_server_asgi, "outsider@globex.test", path="/")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()

    code = page.evaluate(
        """() => new Promise((resolve) => {
            const socket = new WebSocket(`ws://${location.host}/ws/chat/`);
            socket.onopen = () => resolve("open");
            socket.onclose = (event) => resolve(event.code);
        })"""
    )

    assert code != "open"
