"""A small prompt library in a temporary folder: prompts `demo.echo` (v1, v2) and the judge."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from apps.evals.runner import eval_workspace
from apps.llm.prompts import DEFAULT_ROOT, PromptLibrary, clear_caches
from apps.workspaces.models import PlanCode, Workspace
from tests.conftest import committed_system_workspace
from tests.gateway_support import cleared_redis_namespace

V1 = """---
role: system
alias: smart
---
You are the assistant of the {{ workspace_name }} workspace.
"""
# v2 drops the workspace from the persona: a deliberate regression the offline model shows.
V2 = """---
role: system
alias: smart
---
Be helpful. Workspace: {{ workspace_name }}.
"""
SCHEMA = {
    "type": "object",
    "properties": {"workspace_name": {"type": "string", "minLength": 1}},
    "required": ["workspace_name"],
    "additionalProperties": False,
}


def example(id: str, workspace: str, question: str, topic: str) -> dict:
    return {
        "id": id,
        "vars": {"workspace_name": workspace},
        "input": question,
        "reference": question,
        "checks": [
            {"type": "contains", "value": workspace, "when": "offline"},
            {"type": "contains", "value": topic},
        ],
    }


EXAMPLES = [
    example("a", "Acme", "How do credits work?", "credits"),
    example("b", "Globex", "How do I reset my password?", "password"),
    example("c", "Initech", "Where are invoices kept?", "invoices"),
]


def write_library(root: Path) -> PromptLibrary:
    folder = root / "demo.echo"
    folder.mkdir(parents=True)
    (folder / "v1.md").write_text(V1)
    (folder / "v2.md").write_text(V2)
    (folder / "schema.json").write_text(json.dumps(SCHEMA))
    (folder / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    shutil.copytree(DEFAULT_ROOT / "evals.judge", root / "evals.judge")
    (root / "config.yaml").write_text("active:\n  demo.echo: v1\n  evals.judge: v1\n")
    return PromptLibrary(root)


@pytest.fixture
def library(tmp_path: Path) -> Iterator[PromptLibrary]:
    clear_caches()
    root = tmp_path / "prompts"
    found = write_library(root)
    with override_settings(PROMPTS_DIR=str(root), PROMPT_VERSIONS={}):
        yield found
    clear_caches()


@pytest.fixture(scope="package")
def _evals_workspace(django_db_setup: None, django_db_blocker: Any) -> Iterator[Workspace]:
    """The system eval workspace, created as `evals run` creates it, once for these tests."""

    def create() -> Workspace:
        with override_settings(EVALS_WORKSPACE=f"evals-{uuid.uuid4().hex[:8]}"):
            return eval_workspace()

    with committed_system_workspace(django_db_blocker, create) as workspace:
        yield workspace


@pytest.fixture
def eval_ws(_evals_workspace: Workspace, db: None, settings: Any) -> Iterator[Workspace]:
    """The system eval workspace with a clean Redis namespace (deleted before and after), so eval
    calls never meet the day budgets other tests spent."""
    settings.EVALS_WORKSPACE = _evals_workspace.slug
    with cleared_redis_namespace(_evals_workspace.schema_name):
        workspace = eval_workspace()
        assert workspace == _evals_workspace
        assert workspace.plan == PlanCode.ENTERPRISE
        yield workspace
