"""Importing a web page by its URL: checked at submit time as far as that needs no network,
fetched by the indexing task through the SSRF-safe fetcher from a real HTTP server on loopback
(which the tests allow with FETCH_ALLOWED_NETWORKS), parsed to its main content, chunked and
embedded; every page that cannot be imported fails with a reason a person understands."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from django_tenants.utils import schema_context

from apps.common.errors import ApplicationError
from apps.rag.models import Document, DocumentFile
from apps.rag.services import document_add_url, document_index, document_reindex
from apps.workspaces.models import User, Workspace
from tests.gateway_support import gateway_settings

from .conftest import OnPlan

pytestmark = pytest.mark.django_db

ARTICLE = b"""<!doctype html>
<html><head><title>Ocelot handbook</title></head>
<body>
<nav><a href="/">Home</a> <a href="/pricing">Pricing</a> <a href="/login">Sign in</a></nav>
<main><article>
<h1>Ocelot handbook</h1>
<p>The ocelot service keeps its state in PostgreSQL and runs on port 7410 in production.</p>
<h2>Backups</h2>
<p>Backups run nightly at 02:00 UTC and are kept for 35 days in the archive bucket.</p>
<p>Restores are tested every quarter by the operations team, who record the time taken.</p>
</article></main>
<footer>Copyright 2026 Ocelot Inc. All rights reserved. Cookie settings.</footer>
</body></html>
"""

# path -> (status, content type, body); tests change it while the server runs
PAGES: dict[str, tuple[int, str, bytes]] = {}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        if self.path.startswith("/redirect-to/"):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/redirect-to/"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, content_type, body = PAGES.get(self.path, (404, "text/plain", b"missing"))
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _loopback_allowed(settings: Any, fresh_redis: redis.Redis) -> Iterator[None]:
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    PAGES.clear()
    PAGES["/handbook"] = (200, "text/html; charset=utf-8", ARTICLE)
    with gateway_settings():
        yield
    PAGES.clear()


def _import(acme: Workspace, user: User, url: str) -> Document:
    """Add the URL and run its indexing as the task would; the document as it ends."""
    with schema_context(acme.schema_name):
        document = document_add_url(user=user, url=url)
        document_index(workspace=acme, document_id=document.pk)
        document.refresh_from_db()
        return document


def test_a_web_page_is_fetched_parsed_to_its_main_content_and_indexed(
    acme: Workspace, member: User, server: str
) -> None:
    # given a member submits the address of an article
    with schema_context(acme.schema_name):
        document = document_add_url(user=member, url=f"{server}/handbook")
        # then it is queued with nothing fetched yet: the request never touches the network
        assert (document.source, document.status, document.size_bytes) == ("url", "queued", 0)
        assert document.title == f"{server.split('://')[1]}/handbook"
        assert not DocumentFile.objects.filter(document=document).exists()

        # when the task indexes it
        result = document_index(workspace=acme, document_id=document.pk)

        # then the page is kept as the document's bytes, typed, and its main content indexed
        document.refresh_from_db()
        assert (result.status, document.status, document.error) == ("ready", "ready", "")
        assert (document.filename, document.mime) == ("handbook", "text/html")
        assert document.size_bytes == len(ARTICLE)
        assert bytes(document.file.data) == ARTICLE
        text = " ".join(document.chunks.values_list("text", flat=True))
        assert "Backups run nightly at 02:00 UTC" in text
        assert "Cookie settings" not in text  # the footer
        assert "Sign in" not in text  # the navigation
        assert not document.chunks.filter(vector__isnull=True).exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "Enter the address of a web page"),
        ("file:///etc/passwd", "Only http:// and https:// addresses"),
        ("ftp://example.com/notes.txt", "Only http:// and https:// addresses"),
        ("javascript:alert(1)", "Only http:// and https:// addresses"),
        ("example.com/handbook", "Only http:// and https:// addresses"),
        ("https://user:secret@example.com/", "user name or password"),
        ("https:///handbook", "no host"),
        ("https://exa mple.com/", "not a valid web address"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://" + "a" * 2000 + ".com/", "at most 2,000 are accepted"),
        ("http://127.0.0.1/admin", "private network (127.0.0.1)"),
        ("http://10.1.2.3/", "private network (10.1.2.3)"),
        ("http://169.254.169.254/latest/meta-data/", "private network (169.254.169.254)"),
        ("http://[::ffff:192.168.0.1]/", "private network (::ffff:192.168.0.1)"),
        ("http://localhost:8000/", "private network (localhost)"),
    ],
)
def test_urls_refused_at_submit_time_store_nothing(
    acme: Workspace, member: User, settings: Any, url: str, message: str
) -> None:
    settings.FETCH_ALLOWED_NETWORKS = []  # the default: public addresses only
    with schema_context(acme.schema_name):
        with pytest.raises(ApplicationError) as refused:
            document_add_url(user=member, url=url)
        assert message in refused.value.message
        assert refused.value.field == "url"
        assert not Document.objects.exists()


def test_a_redirect_into_a_private_network_fails_the_document_with_the_reason(
    acme: Workspace, member: User, server: str
) -> None:
    # the address passes the submit check (loopback is allowed here); its redirect does not
    document = _import(acme, member, f"{server}/redirect-to/http://169.254.169.254/latest/")

    assert document.status == "failed"
    assert document.error == (
        "That address points into a private network (169.254.169.254); it is not fetched."
    )
    with schema_context(acme.schema_name):
        assert not document.chunks.exists()
        assert not DocumentFile.objects.filter(document=document).exists()


@pytest.mark.parametrize(
    ("page", "reason"),
    [
        ((404, "text/html", b"<p>gone</p>"), "The server answered 404 (Not Found) instead of"),
        ((500, "text/html", b"oops"), "The server answered 500 (Internal Server Error)"),
        ((200, "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64), "The page is “image/png”, not"),
        ((200, "application/zip", b"PK\x03\x04" + b"\x00" * 64), "only HTML, PDF, Markdown"),
        ((200, "", b"\x00\x01\x02 binary"), "The page is of no declared type, not text"),
        ((200, "text/html", b""), "The server answered with an empty page."),
        (
            (200, "text/html", b"<html><body><script>var x = 1;</script></body></html>"),
            "No readable text found in the HTML page",
        ),
    ],
)
def test_a_page_that_cannot_be_imported_fails_with_a_reason(
    acme: Workspace, member: User, server: str, page: tuple[int, str, bytes], reason: str
) -> None:
    PAGES["/page"] = page

    document = _import(acme, member, f"{server}/page")

    assert document.status == "failed"
    assert reason in document.error
    assert document.chunk_count == 0


def test_a_page_over_the_plans_size_fails_naming_the_plan(
    acme: Workspace, member: User, server: str, settings: Any, on_plan: OnPlan
) -> None:
    on_plan("pro")  # takes the setting
    settings.RAG_MAX_FILE_BYTES = 1000
    PAGES["/big"] = (200, "text/plain", b"word " * 400)

    document = _import(acme, member, f"{server}/big")

    assert document.status == "failed"
    assert document.error == (
        "The page is 2,000 bytes; the Pro plan allows documents of at most 1,000 bytes."
    )


def test_a_page_over_the_fetchers_cap_is_cut_off(
    acme: Workspace, member: User, server: str, settings: Any
) -> None:
    settings.FETCH_MAX_BYTES = 1000
    PAGES["/big"] = (200, "text/plain", b"word " * 400)

    document = _import(acme, member, f"{server}/big")

    assert document.status == "failed"
    assert "larger than 1,000 bytes" in document.error


@pytest.mark.parametrize(
    ("path", "content_type", "body", "mime", "found"),
    [
        (
            "/notes.md",
            "application/octet-stream",
            b"# Notes\n\nThe kiln fires at 1240 C.",
            "text/markdown",
            "1240 C",
        ),
        (
            "/data.csv",
            "text/csv; charset=utf-8",
            b"kiln,temperature\nbig,1240\n",
            "text/plain",
            "1240",
        ),
        (
            "/guide",
            "text/markdown",
            b"# Guide\n\nLoad heavy pieces low.",
            "text/markdown",
            "heavy pieces",
        ),
    ],
)
def test_text_pages_are_typed_by_their_declared_type_or_name(
    acme: Workspace,
    member: User,
    server: str,
    path: str,
    content_type: str,
    body: bytes,
    mime: str,
    found: str,
) -> None:
    PAGES[path] = (200, content_type, body)

    document = _import(acme, member, f"{server}{path}")

    assert (document.status, document.mime) == ("ready", mime)
    with schema_context(acme.schema_name):
        assert document.chunks.filter(text__contains=found).exists()


def test_reindexing_a_url_document_fetches_the_page_again(
    acme: Workspace, member: User, server: str
) -> None:
    document = _import(acme, member, f"{server}/handbook")
    assert document.status == "ready"

    # when the page changes and the document is re-indexed
    PAGES["/handbook"] = (200, "text/html", ARTICLE.replace(b"35 days", b"90 days"))
    with schema_context(acme.schema_name):
        document_reindex(document=document)
        result = document_index(workspace=acme, document_id=document.pk)
        document.refresh_from_db()

        # then the new text is indexed, and the unchanged chunks kept their vectors
        assert (result.status, document.status) == ("ready", "ready")
        assert result.reused >= 1
        assert document.chunks.filter(text__contains="90 days").exists()
        assert not document.chunks.filter(text__contains="35 days").exists()


def test_a_failed_fetch_can_be_retried_by_reindexing(
    acme: Workspace, member: User, server: str
) -> None:
    document = _import(acme, member, f"{server}/later")
    assert document.status == "failed"

    PAGES["/later"] = (200, "text/plain", b"Published now: the kiln fires at 1240 C.")
    with schema_context(acme.schema_name):
        document_reindex(document=document)
        document_index(workspace=acme, document_id=document.pk)
        document.refresh_from_db()

    assert (document.status, document.error) == ("ready", "")


def test_another_workspace_never_sees_an_imported_page(
    acme: Workspace, globex: Workspace, member: User, server: str
) -> None:
    _import(acme, member, f"{server}/handbook")

    with schema_context(globex.schema_name):
        assert not Document.objects.filter(url=f"{server}/handbook").exists()
