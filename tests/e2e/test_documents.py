"""The Documents page in a real browser (Debian chromium) against daphne, with a real Celery
worker indexing: a member drops a Markdown file on the page, and a page opened before the upload
sees the new row appear and become "ready" over the workspace socket, without reloading."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django_tenants.utils import schema_context
from playwright.sync_api import BrowserContext, Page, expect

from apps.rag.models import Document
from tests.asgi_server import AsgiServer, run_committed
from tests.common.conftest import CeleryWorker, worker_env
from tests.factories import PASSWORD

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
