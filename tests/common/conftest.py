"""A real Celery worker process for tests of the shared plumbing.

The worker is `python -m celery -A aisaas worker` on this session's test database and Redis; it
sees committed rows only (the session workspaces are committed). One worker object lives for the
session; `celery_worker` starts it on demand and stops it when the module ends, so no worker
runs (and picks up tasks) during unrelated tests; `no_celery_worker` guarantees none answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from aisaas.celery import app

STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
PING_TIMEOUT_SECONDS = 1.0


def _database_url(db: dict[str, Any]) -> str:
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    return (
        f"postgres://{quote(db['USER'], safe='')}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    )


def _workers_answering(destination: list[str] | None = None) -> list[dict[str, Any]]:
    return list(app.control.ping(destination=destination, timeout=PING_TIMEOUT_SECONDS, limit=1))


class CeleryWorker:
    """`celery worker --pool solo` in a subprocess; output goes to `log` for failure messages."""

    def __init__(self, *, env: dict[str, str], log: Path):
        # A name of our own, so a stray worker on the same Redis never passes for this one.
        self.name = f"aisaas-test-{os.getpid()}@pytest"
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no output)"

    def start(self, *, purge: bool = True) -> None:
        """Start the worker unless it runs; return once it answers a ping. `purge=False`
        keeps what was queued while none ran (a restart); by default it must not run now
        (earlier tests, earlier sessions)."""
        if self.running:
            return
        if purge:
            app.control.purge()
        command = [
            sys.executable, "-m", "celery", "-A", "aisaas", "worker",
            "--pool", "solo", "-l", "WARNING", "-n", self.name,
            # No cluster chatter: one worker, and mingle alone costs a second at startup.
            "--without-mingle", "--without-gossip", "--without-heartbeat",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=settings.BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_until_answering()

    def _wait_until_answering(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"celery worker exited with {self.process.returncode}:\n{self.output()}"
                )
            if _workers_answering([self.name]):
                return
        self.stop()
        pytest.fail(
            f"celery worker did not answer a ping within {STARTUP_TIMEOUT_SECONDS}s:\n{self.output()}"
        )

    def stop(self) -> None:
        # Warm shutdown; its database connections must be gone before the test database drops.
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def worker_env() -> dict[str, str]:
    """What a worker process needs to reach this session's test database and Redis."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "aisaas.settings.test",
        "DATABASE_URL": _database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="session")
def celery_worker_process(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryWorker]:
    """The session's worker, not started yet; stopped at the latest when the session ends."""
    worker = CeleryWorker(env=worker_env(), log=tmp_path_factory.mktemp("celery") / "worker.log")
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def _celery_worker_stops_with_module(celery_worker_process: CeleryWorker) -> Iterator[None]:
    yield
    celery_worker_process.stop()


@pytest.fixture
def celery_worker(
    celery_worker_process: CeleryWorker, _celery_worker_stops_with_module: None
) -> CeleryWorker:
    """A running worker that answers pings."""
    celery_worker_process.start()
    return celery_worker_process


@pytest.fixture
def no_celery_worker(celery_worker_process: CeleryWorker) -> None:
    """No worker process, and none answering on this session's broker."""
    celery_worker_process.stop()
    replies = _workers_answering()
    if replies:
        pytest.fail(f"another Celery worker answers on {settings.REDIS_URL}: {replies}")
