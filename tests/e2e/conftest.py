"""End-to-end setup: daphne serves the ASGI app on loopback, Debian's Chromium drives it.

pytest-django's `live_server` is WSGI and cannot stream, so the app runs in a daphne subprocess
against this session's test database and Redis. The server sees committed rows only: the
session workspaces are committed; a test that needs more creates it through the UI and removes
it afterwards with `run_committed`.

Browser tests carry `django_db` only so that pytest-django creates the test database when they
run alone; their own transaction stays empty.

Playwright's sync API marks its suspended event loop as running in this thread for as long as it
is started, and Django then refuses ORM calls as async-unsafe. So Playwright starts and stops
within each test, after pytest-django opened the test's transaction and before it rolls it back.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection, connections
from playwright.sync_api import Browser, Playwright, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Playwright adds --headless itself unless --headed is given.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Chromium resolves localhost and *.localhost to loopback itself: no hosts file needed.
BASE_DOMAIN = "localhost"
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0

_log_offset = pytest.StashKey[int]()
T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: drives Chromium against the app served by daphne (tests/e2e)"
    )


@dataclass(frozen=True)
class AsgiServer:
    port: int
    log: Path

    def url(self, path: str = "/", *, workspace: str | None = None) -> str:
        """`http://localhost:<port><path>`, or on `<workspace>.localhost` for a workspace."""
        host = f"{workspace}.{BASE_DOMAIN}" if workspace else BASE_DOMAIN
        return f"http://{host}:{self.port}{path}"

    def output(self, since: int = 0) -> str:
        with self.log.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")


@pytest.fixture(scope="session")
def live_server_asgi(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AsgiServer]:
    """daphne on a free loopback port, serving this session's test database and Redis."""
    port = _free_port()
    server = AsgiServer(port=port, log=tmp_path_factory.mktemp("daphne") / "daphne.log")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "aisaas.settings.test",
        "DATABASE_URL": _database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        # Settings derive BASE_DOMAIN and the port of workspace URLs from SITE_URL.
        "SITE_URL": f"http://{BASE_DOMAIN}:{port}",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    with server.log.open("wb") as log:
        process = subprocess.Popen(
            [*command, "aisaas.asgi:application"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_serving(process, server)
        yield server
    finally:
        _stop(process)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database_url(db: dict[str, Any]) -> str:
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    return (
        f"postgres://{quote(db['USER'], safe='')}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    )


def _wait_until_serving(process: subprocess.Popen[bytes], server: AsgiServer) -> None:
    """Return once /healthz reports a working database and Redis; fail with daphne's output."""
    # Loopback only: never through a proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    health = f"http://127.0.0.1:{server.port}/healthz"
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"daphne exited with {process.returncode}:\n{server.output()}")
        try:
            with opener.open(health, timeout=5) as response:
                report = json.load(response)
        except urllib.error.HTTPError as exc:
            # 503 names the failing part; no Celery worker runs in tests, the rest must be ok.
            report = json.load(exc)
        except OSError:
            time.sleep(0.1)
            continue
        if report.get("db") == "ok" and report.get("redis") == "ok":
            return
        pytest.fail(f"daphne is unhealthy: {report}\n{server.output()}")
    pytest.fail(
        f"daphne did not answer {health} within {STARTUP_TIMEOUT_SECONDS}s:\n{server.output()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    # Its database connections must be gone before pytest-django drops the test database.
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    server = getattr(item, "funcargs", {}).get("live_server_asgi")
    if server is not None:
        item.stash[_log_offset] = server.log.stat().st_size
    yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed browser test shows what daphne printed while it ran."""
    report = yield
    server = getattr(item, "funcargs", {}).get("live_server_asgi")
    if report.failed and server is not None and call.when == "call":
        report.sections.append(
            ("daphne output", server.output(since=item.stash.get(_log_offset, 0)))
        )
    return report


def run_committed(query: Callable[[], T]) -> T:
    """Run ORM code on a connection of its own, so its writes commit at once.

    A browser test's ORM calls must not join the test's transaction (daphne cannot see it, and
    it is rolled back), nor run in this thread while Playwright marks its loop as running there.
    """

    def in_thread() -> T:
        try:
            return query()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(in_thread).result()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium (never `playwright install`), offline; --headed and --slowmo apply."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


# pytest-playwright starts Playwright and the browser once per session; these run them per test
# instead (see the module docstring). Its `context` and `page` fixtures, and --screenshot /
# --tracing, work on top of them.


@pytest.fixture
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def browser(playwright: Playwright, browser_type_launch_args: dict[str, Any]) -> Iterator[Browser]:
    browser = playwright.chromium.launch(**browser_type_launch_args)
    yield browser
    browser.close()


@pytest.fixture
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 800}}
