"""The compatibility suite: real client libraries (tests/compat/requirements.txt, installed in
.venv-compat by `make compat`, never in the project's venv) against daphne serving the ASGI app
and the fake upstream of tests/api. Without AISAAS_COMPAT_PYTHON (set by `make compat`) the
suite is skipped: `make test` does not build that venv."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apps.llm.core.tokens import seed_tiktoken_cache
from tests.api.conftest import (  # noqa: F401 - the API suite's fixtures, reused
    Key,
    _fresh_upstream,
    api_server,
    make_key,
    upstream,
    workspace_limits,
)
from tests.asgi_server import AsgiServer

CLIENTS = Path(__file__).parent / "clients" / "run.py"
TIMEOUT_SECONDS = 180


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test` leaves this suite out (--ignore); run without its venv, it refuses loudly
    rather than skipping."""
    if os.environ.get("AISAAS_COMPAT_PYTHON"):
        return
    if any("tests/compat/" in str(item.fspath) for item in items):
        raise pytest.UsageError("tests/compat needs the client libraries' venv: run `make compat`")


Run = Callable[..., dict[str, Any]]


@pytest.fixture
def run_clients(api_server: AsgiServer) -> Run:  # noqa: F811 - the fixture imported above
    """`run_clients("langchain", key)` → the scenario's JSON, run in the compat venv."""

    def run(scenario: str, key: Key) -> dict[str, Any]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "AISAAS_BASE_URL": api_server.url("/v1"),
            "AISAAS_API_KEY": key.secret,
            "AISAAS_NONCE": uuid.uuid4().hex[:10],
            # tiktoken (LangChain's embeddings count with it) reads the project's seeded
            # vocabulary: nothing is downloaded.
            "TIKTOKEN_CACHE_DIR": str(seed_tiktoken_cache()),
            "NO_PROXY": "*",
        }
        done = subprocess.run(
            [os.environ["AISAAS_COMPAT_PYTHON"], str(CLIENTS), scenario],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    return run
