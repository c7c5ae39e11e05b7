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

from collections.abc import Generator, Iterator
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.asgi_server import AsgiServer, daphne

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

_log_offset = pytest.StashKey[int]()
T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: drives Chromium against the app served by daphne (tests/e2e)"
    )


@pytest.fixture(scope="session")
def live_server_asgi(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AsgiServer]:
    """daphne on a free loopback port, serving this session's test database and Redis."""
    with daphne(log=tmp_path_factory.mktemp("daphne") / "daphne.log") as server:
        yield server


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


@pytest.fixture
def page(page: Page) -> Iterator[Page]:
    """pytest-playwright's page, failing the test when the browser refused anything under the
    Content-Security-Policy (an inline script, a handler attribute, a foreign source): every
    browser test checks that the pages it visits work with the CSP on."""
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield page
    assert not refused, f"the Content-Security-Policy refused: {refused}"
