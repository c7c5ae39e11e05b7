"""The Documents page in a real browser (Debian chromium) against daphne, with a real Celery
worker indexing: a member drops a Markdown file on the page, and a page opened before the upload
sees the new row appear and become "ready" over the workspace socket, without reloading; then
uploads a PDF and a Markdown file, gets an answer citing the PDF's passage (the citation opens
it), deletes the PDF and finds it gone from the next answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django_tenants.utils import schema_context
from playwright.sync_api import BrowserContext, FilePayload, Locator, Page, expect

from apps.agents.models import Conversation
from apps.rag.models import Document
from apps.workspaces.models import User
from tests.asgi_server import AsgiServer, run_committed
from tests.common.conftest import CeleryWorker, worker_env
from tests.factories import PASSWORD
from tests.rag.test_parsing import make_pdf, pdf_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

MEMBER = "member@acme.test"
GUIDE = """# Kiln handbook

The kiln fires at 1240 C and cools overnight.

## Loading

Load the heaviest pieces on the lowest shelf.
"""


@pytest.fixture(scope="module")
def indexing_worker(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryWorker]:
    """A Celery worker on this session's test database and Redis, for this module only."""
    worker = CeleryWorker(env=worker_env(), log=tmp_path_factory.mktemp("celery") / "worker.log")
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def title() -> Iterator[str]:
    """A file name no other test uses; its documents are deleted afterwards."""
    name = f"kiln-{uuid.uuid4().hex[:8]}.md"
    yield name

    def remove() -> None:
        with schema_context("acme"):
            Document.objects.filter(title=name).delete()

    run_committed(remove)


def _log_in(page: Page, server: AsgiServer) -> None:
    page.goto(server.url("/documents/", workspace="acme"))
    page.get_by_label("Email").fill(MEMBER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name="Documents", exact=True)).to_be_visible()


def _drop(page: Page, name: str, text: str) -> None:
    """Drop a file on the page, as a file manager would."""
    page.evaluate(
        """([name, text]) => {
            const data = new DataTransfer();
            data.items.add(new File([text], name, { type: "text/markdown" }));
            for (const type of ["dragenter", "dragover", "drop"]) {
                document.body.dispatchEvent(
                    new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: data })
                );
            }
        }""",
        [name, text],
    )


def test_a_dropped_markdown_file_becomes_ready_live(
    live_server_asgi: AsgiServer,
    indexing_worker: CeleryWorker,
    context: BrowserContext,
    page: Page,
    title: str,
) -> None:
    # given a member watching the Documents page, its socket open
    _log_in(page, live_server_asgi)
    watcher = context.new_page()
    watcher.goto(live_server_asgi.url("/documents/", workspace="acme"))
    expect(watcher.get_by_test_id("documents")).to_have_attribute("data-live", "on")
    watcher.evaluate("window.__notReloaded = true")

    # when they drop a Markdown file on the page in another tab
    _drop(page, title, GUIDE)

    # then the upload is confirmed there
    expect(page.get_by_role("status")).to_contain_text(f"Added 1 document: “{title}”")
    # and the watching page shows the new row, which becomes ready with its chunks, live
    row = watcher.get_by_test_id("document-row").filter(has_text=title)
    expect(row).to_be_visible(timeout=20_000)
    expect(row.get_by_test_id("document-status")).to_have_text("Ready", timeout=60_000)
    expect(row.get_by_test_id("document-chunks")).not_to_have_text("0")
    expect(row.get_by_test_id("document-error")).to_be_hidden()
    assert watcher.evaluate("window.__notReloaded") is True
    expect(watcher.get_by_test_id("live-off")).to_be_hidden()

    # and its page lists the chunks with their headings
    row.get_by_test_id("document-title").click()
    expect(watcher.get_by_test_id("chunk").first).to_be_visible()
    expect(watcher.get_by_test_id("chunks")).to_contain_text("Kiln handbook › Loading")


PDF_FACT = "The glaze studio is open to members on Thursdays from 18:00 to 21:00."


@pytest.fixture
def pdf_title() -> Iterator[str]:
    name = f"studio-{uuid.uuid4().hex[:8]}.pdf"
    yield name

    def remove() -> None:
        with schema_context("acme"):
            Document.objects.filter(title=name).delete()

    run_committed(remove)


@pytest.fixture
def _forget_member_conversations() -> Iterator[None]:
    yield

    def remove() -> None:
        with schema_context("acme"):
            Conversation.objects.filter(user_id=User.objects.get(email=MEMBER).pk).delete()

    run_committed(remove)


def _ask(page: Page, server: AsgiServer, question: str) -> Locator:
    page.goto(server.url("/chat/", workspace="acme"))
    page.get_by_test_id("new-chat").click()
    box = page.get_by_test_id("composer-input")
    box.fill(question)
    box.press("Enter")
    answer = page.get_by_test_id("message-assistant").last
    expect(answer).to_have_attribute("data-status", "complete", timeout=30_000)
    return answer


@pytest.mark.usefixtures("_forget_member_conversations")
def test_upload_a_pdf_and_markdown_then_get_a_cited_answer_and_lose_it_on_delete(
    live_server_asgi: AsgiServer,
    indexing_worker: CeleryWorker,
    page: Page,
    title: str,
    pdf_title: str,
) -> None:
    # given a member who uploads a PDF and a Markdown file at once
    _log_in(page, live_server_asgi)
    pdf = pdf_bytes(make_pdf([["Studio rules"], [PDF_FACT, "Clean the wheels after use."]]))
    page.get_by_test_id("upload-input").set_input_files(
        [
            FilePayload(name=pdf_title, mimeType="application/pdf", buffer=pdf),
            FilePayload(name=title, mimeType="text/markdown", buffer=GUIDE.encode()),
        ]
    )
    page.get_by_test_id("upload-submit").click()
    for name in (pdf_title, title):
        row = page.get_by_test_id("document-row").filter(has_text=name)
        expect(row.get_by_test_id("document-status")).to_have_text("Ready", timeout=60_000)

    # when they ask what only the PDF says
    answer = _ask(page, live_server_asgi, "When is the glaze studio open to members?")

    # then the answer quotes it with a citation, and the sources panel links to its page
    expect(answer.get_by_test_id("message-body")).to_contain_text("Thursdays from 18:00")
    expect(answer.locator("a.cite").first).to_have_text("[1]")
    source = answer.get_by_test_id("source").first
    expect(source).to_contain_text(pdf_title)
    expect(source).to_contain_text("page 2")
    # and the citation opens the passage on the document's page, highlighted
    answer.locator("a.cite").first.click()
    expect(page.get_by_role("heading", name=pdf_title)).to_be_visible()
    target = page.locator(".chunk:target")
    expect(target).to_contain_text(PDF_FACT)

    # when the member deletes the PDF
    page.get_by_test_id("delete").click()
    page.get_by_test_id("delete-confirm-button").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted")

    # then the next answer no longer knows it (the Markdown keeps the Assistant grounded)
    again = _ask(page, live_server_asgi, "When is the glaze studio open to members? Check again.")
    expect(again.get_by_test_id("message-body")).not_to_contain_text("Thursdays")
    expect(again.get_by_test_id("source")).to_have_count(0)
