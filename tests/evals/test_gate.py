"""The regression gate and the CI path detection (plain Python; git on a throwaway repo)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from apps.evals.baselines import (
    BaselineError,
    Measured,
    baseline_load,
    baseline_write,
    gate,
    git_show,
)
from apps.evals.changes import changed_paths, main, needs_evals


def measured(
    score: float, *, version: str = "v1", content_hash: str = "c1", eval_hash: str = "e1"
) -> Measured:
    return Measured(
        "chat.system",
        version,
        "smart",
        "local-smart",
        score,
        1.0,
        22,
        content_hash,
        eval_hash,
        True,
    )


def entries(run: Measured) -> dict:
    return {run.key: run.entry()}


def failures(findings):
    return [f.message for f in findings if not f.ok]


def test_the_gate_passes_when_scores_hold():
    base = measured(0.80)
    now = measured(0.77)  # −3.75 %: inside 5 %
    findings = gate(
        [now], {"chat.system": entries(now)}, {"chat.system": entries(base)}, base_ref="origin/main"
    )
    assert failures(findings) == []


def test_the_gate_fails_a_deliberate_regression_and_says_why():
    base = measured(0.80)
    now = measured(0.70, version="v2", content_hash="c2")  # a new version, −12.5 %
    findings = gate(
        [now], {"chat.system": entries(now)}, {"chat.system": entries(base)}, base_ref="origin/main"
    )
    [message] = failures(findings)
    assert "12.5% below the baseline 0.800" in message
    assert "v1@smart/local-smart at origin/main" in message
    assert "allows 5%" in message


def test_a_missing_baseline_says_how_to_create_it():
    [message] = failures(gate([measured(0.8)], {"chat.system": None}, {}, base_ref="main"))
    assert "there is no evals/baselines/chat.system.json" in message
    assert "python manage.py evals baseline --prompt chat.system" in message


def test_a_baseline_without_this_route_says_how_to_create_it():
    other = Measured("chat.system", "v1", "fast", "local-fast", 0.8, 1.0, 22, "c1", "e1", True)
    [message] = failures(
        gate([measured(0.8)], {"chat.system": entries(other)}, {}, base_ref="main")
    )
    assert "has no entry v1@smart/local-smart" in message
    assert "evals baseline" in message


def test_a_prompt_changed_without_its_baseline_fails():
    recorded = measured(0.8)
    now = measured(0.8, content_hash="edited")
    [message] = failures(gate([now], {"chat.system": entries(recorded)}, {}, base_ref="main"))
    assert "prompts/chat.system/v1.md changed since evals/baselines/chat.system.json" in message
    assert "no prompt change without an eval run" in message


def test_baseline_files_round_trip_and_keep_other_routes(tmp_path: Path):
    other = Measured(
        "chat.system", "v1", "smart", "claude-sonnet-4-6", 0.9, 1.0, 22, "c1", "e1", False
    )
    baseline_write(tmp_path, [other])
    baseline_write(tmp_path, [measured(0.8)])
    baseline_write(tmp_path, [measured(0.85, version="v2")])  # replaces v1 on the same route
    found = baseline_load((tmp_path / "chat.system.json").read_text(), source="x")
    assert found is not None
    assert set(found) == {"v1@smart/claude-sonnet-4-6", "v2@smart/local-smart"}
    assert found["v2@smart/local-smart"]["score"] == 0.85
    with pytest.raises(BaselineError, match="not a baseline file"):
        baseline_load("[]", source="x")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "x.py").write_text("x = 1\n")
    (tmp_path / "evals" / "baselines").mkdir(parents=True)
    (tmp_path / "evals" / "baselines" / "p.json").write_text(json.dumps({"entries": {}}))
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "base")
    git(tmp_path, "checkout", "-qb", "feature")
    return tmp_path


def test_needs_evals_matches_prompt_and_eval_paths():
    assert needs_evals(
        ["apps/x.py", "prompts/chat.system/v2.md", "evals/baselines/a.json", "README.md"]
    ) == [
        "prompts/chat.system/v2.md",
        "evals/baselines/a.json",
    ]
    assert needs_evals(["apps/llm/services.py", "docs/prompts.md"]) == []


def test_changed_paths_against_the_merge_base(repo: Path, capsys):
    assert changed_paths("main", cwd=repo) == []
    assert main(["--base", "main", "--repo", str(repo)]) == 1
    (repo / "apps" / "x.py").write_text("x = 2\n")
    git(repo, "commit", "-qam", "code only")
    assert changed_paths("main", cwd=repo) == ["apps/x.py"]
    assert main(["--base", "main", "--repo", str(repo)]) == 1
    (repo / "prompts" / "p").mkdir(parents=True)
    (repo / "prompts" / "p" / "v1.md").write_text("hi\n")  # untracked counts too
    assert changed_paths("main", cwd=repo) == ["apps/x.py", "prompts/p/v1.md"]
    assert main(["--base", "main", "--repo", str(repo)]) == 0
    assert main(["--base", "no-such-ref", "--repo", str(repo)]) == 0  # unknown base: run them
    assert "running them to be safe" in capsys.readouterr().out


def test_git_show_reads_a_file_at_a_ref(repo: Path):
    assert json.loads(git_show("main", "evals/baselines/p.json", cwd=repo) or "") == {"entries": {}}
    assert git_show("main", "evals/baselines/missing.json", cwd=repo) is None
    with pytest.raises(BaselineError, match="Unknown git ref"):
        git_show("nope", "evals/baselines/p.json", cwd=repo)
