"""The import contract (pyproject.toml, `make lint`) holds on the code, and fails on a new
back-edge: a copy of the tree with one upward import planted is refused, naming the edge."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "migrations", "static", "templates")
    for package in ("aisaas", "apps"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contract_holds_on_the_code(tree_copy: Path) -> None:
    result = _lint(tree_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        # tenancy reaching up into billing
        ("apps/workspaces/probe.py", "import apps.billing.ledger", "Layers"),
        # the trace store reaching up into chat
        ("apps/traces/probe.py", "import apps.agents.models", "Layers"),
        # the gateway reaching the ledger directly instead of through its port
        ("apps/llm/probe.py", "import apps.billing.debit_queue", "Layers"),
        # an app reaching into the gateway's internals instead of apps.llm.services
        ("apps/agents/probe.py", "import apps.llm.core.budget", "public face"),
        # the core importing Django
        ("apps/llm/core/probe.py", "import django.conf", "plain Python"),
        # the two edges importing each other
        ("apps/api/probe.py", "import apps.console.replay", "Layers"),
    ],
)
def test_a_planted_back_edge_breaks_the_contract(
    tree_copy: Path, module: str, planted: str, contract: str
) -> None:
    (tree_copy / module).write_text(f"{planted}  # planted by the test\n")
    result = _lint(tree_copy)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), result.stdout
    probe = module.removesuffix(".py").replace("/", ".")
    assert probe in result.stdout  # the report names the planted module
