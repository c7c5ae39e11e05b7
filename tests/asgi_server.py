"""daphne serving the ASGI app in a subprocess, against this test session's database and Redis.

Used by the browser tests (tests/e2e) and the API tests (tests/api): pytest-django's
`live_server` is WSGI and can neither stream nor run Channels. The server sees committed rows
only; `run_committed` (tests/e2e/conftest.py) writes rows it can see.
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
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection, connections

# Chromium and urllib resolve localhost and *.localhost to loopback: no hosts file needed.
BASE_DOMAIN = "localhost"
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0

T = TypeVar("T")


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


@contextmanager
def daphne(*, log: Path, env: Mapping[str, str] | None = None) -> Iterator[AsgiServer]:
    """daphne on a free loopback port; `env` adds or overrides environment variables."""
    port = free_port()
    server = AsgiServer(port=port, log=log)
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "aisaas.settings.test",
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        # Settings derive BASE_DOMAIN and the port of workspace URLs from SITE_URL.
        "SITE_URL": f"http://{BASE_DOMAIN}:{port}",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    with server.log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "aisaas.asgi:application"],
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_serving(process, server)
        yield server
    finally:
        _stop(process)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(db: dict[str, Any]) -> str:
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
