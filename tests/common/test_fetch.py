"""The SSRF-safe fetcher against a real HTTP server on loopback: private addresses are refused
unless allowed, every redirect hop is checked, sizes and time are capped, and the connection
goes to the address that was checked."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from apps.common.fetch import FetchError, fetch_url

PAGE = b"<html><body><h1>Ocelot</h1><p>Backups run nightly.</p></body></html>"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        routes = {
            "/page": self._page,
            "/to-metadata": lambda: self._redirect("http://169.254.169.254/latest/meta-data/"),
            "/to-page": lambda: self._redirect("/page"),
            "/loop": lambda: self._redirect("/loop"),
            "/huge-declared": self._huge_declared,
            "/huge-streamed": self._huge_streamed,
            "/host": self._host,
        }
        routes.get(self.path, self._missing)()

    def _page(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _huge_declared(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(50_000_000))
        self.end_headers()

    def _huge_streamed(self) -> None:
        self.send_response(200)
        self.end_headers()  # no length: read until close
        for _ in range(100):
            self.wfile.write(b"x" * 10_000)

    def _host(self) -> None:
        body = (self.headers.get("Host") or "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _missing(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.1/32"]


def test_loopback_is_refused_by_default(server: str) -> None:
    with pytest.raises(FetchError) as refused:
        fetch_url(f"{server}/page")
    assert "private network (127.0.0.1)" in refused.value.message
    assert refused.value.field == "url"


@pytest.mark.usefixtures("loopback_allowed")
def test_an_allowed_address_is_fetched_with_its_content_type(server: str) -> None:
    fetched = fetch_url(f"{server}/to-page")
    assert (fetched.status, fetched.data) == (200, PAGE)
    assert fetched.content_type.startswith("text/html")
    assert fetched.url == f"{server}/page"


@pytest.mark.usefixtures("loopback_allowed")
def test_a_redirect_into_the_cloud_metadata_address_is_refused(server: str) -> None:
    with pytest.raises(FetchError, match=r"private network \(169\.254\.169\.254\)"):
        fetch_url(f"{server}/to-metadata")


@pytest.mark.usefixtures("loopback_allowed")
def test_redirect_loops_stop(server: str, settings: Any) -> None:
    settings.FETCH_MAX_REDIRECTS = 3
    with pytest.raises(FetchError, match="More than 3 redirects"):
        fetch_url(f"{server}/loop")


@pytest.mark.usefixtures("loopback_allowed")
@pytest.mark.parametrize("path", ["/huge-declared", "/huge-streamed"])
def test_a_body_over_the_cap_is_refused(server: str, path: str) -> None:
    with pytest.raises(FetchError, match="larger than 100,000 bytes"):
        fetch_url(f"{server}{path}", max_bytes=100_000)


@pytest.mark.usefixtures("loopback_allowed")
def test_a_name_is_connected_to_the_checked_address_and_sent_as_host(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    # a resolver that would answer differently on a second lookup (DNS rebinding) is asked once
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])
    fetched = fetch_url(
        f"http://docs.example.test:{port}/host", resolver=lambda host, port: next(answers)
    )
    assert fetched.data == f"docs.example.test:{port}".encode()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "Only http:// and https://"),
        ("ftp://example.com/x", "Only http:// and https://"),
        ("http://user:secret@example.com/", "user name or password"),
        ("http:///nohost", "no host"),
        ("http://[::1]:80/", "private network (::1)"),
        ("http://[::ffff:10.0.0.1]/", "private network (10.0.0.1)"),
        ("http://0.0.0.0/", "private network (0.0.0.0)"),
        ("http://example.com:99999/", "not a valid URL"),
    ],
)
def test_urls_that_are_never_fetched(url: str, message: str) -> None:
    with pytest.raises(FetchError) as refused:
        fetch_url(url, resolver=lambda host, port: ["93.184.215.14"])
    assert message in refused.value.message


def test_a_name_that_resolves_to_any_private_address_is_refused() -> None:
    with pytest.raises(FetchError, match=r"private network \(192\.168\.1\.5\)"):
        fetch_url(
            "http://intranet.example.test/",
            resolver=lambda host, port: ["93.184.215.14", "192.168.1.5"],
        )


def test_an_unresolvable_name_is_a_clear_error() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror("no such name")

    with pytest.raises(FetchError, match="could not be resolved"):
        fetch_url("http://nowhere.example.test/", resolver=fail)


def test_hosts_outside_the_allowlist_are_refused() -> None:
    with pytest.raises(FetchError, match="not on the list"):
        fetch_url("https://evil.example.test/", allowed_hosts=[".docs.example.test"])


@pytest.mark.usefixtures("loopback_allowed")
def test_a_server_that_never_answers_times_out() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never answers
    try:
        with pytest.raises(FetchError, match="took too long"):
            fetch_url(f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout=0.5)
    finally:
        silent.close()


def test_a_name_is_resolved_by_the_system_and_each_address_checked(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    with pytest.raises(FetchError, match="private network"):
        fetch_url(f"http://localhost:{port}/page")  # the real resolver: 127.0.0.1 (and ::1)
