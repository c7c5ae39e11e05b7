"""`evals run / baseline / compare` through the real gateway (offline model), real Postgres and
Redis: results stored, side by side, the gate on a deliberate regression, a judge gone wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.evals.models import EvalResult, EvalRun
from apps.evals.runner import GatewayPorts, evals_run
from apps.llm.adapters import run_sync
from apps.llm.config import call_scope_for
from apps.llm.core.context import Actor
from apps.llm.prompts import PromptLibrary
from apps.workspaces.models import Workspace
from tests.gateway_support import gateway_settings

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _offline_glue() -> Iterator[None]:
    with gateway_settings():
        yield


def evals(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("evals", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_run_scores_stores_and_prints_a_table(library: PromptLibrary, eval_ws: Workspace):
    out, _ = evals("run", "--prompt", "demo.echo", "--workspace", eval_ws.slug)
    assert "demo.echo" in out
    assert "local-smart (offline)" in out
    run = EvalRun.objects.get(prompt_name="demo.echo")
    assert (run.prompt_version, run.alias, run.examples, run.errors) == ("v1", "smart", 3, 0)
    assert run.score == 1.0
    assert run.passed == 3
    assert run.offline
    assert run.cost_micros > 0
    assert run.latency_ms_p50 >= 0
    assert run.workspace == eval_ws
    assert run.content_hash == library.load("demo.echo").content_hash
    result = EvalResult.objects.get(run=run, example_id="a")
    assert "Acme" in result.output
    assert result.trace_id
    assert result.passed
    assert [c["type"] for c in result.checks] == ["contains", "contains"]


def test_side_by_side_versions_on_the_same_examples(library: PromptLibrary, eval_ws: Workspace):
    out, _ = evals(
        "run",
        "--prompt",
        "demo.echo",
        "--version",
        "v1",
        "--version",
        "v2",
        "--workspace",
        eval_ws.slug,
        "--json",
    )
    rows = json.loads(out)
    assert [(r["version"], r["score"]) for r in rows] == [("v1", 1.0), ("v2", 0.5)]
    assert rows[0]["batch"] == rows[1]["batch"]
    table, _ = evals(
        "run",
        "--prompt",
        "demo.echo",
        "--version",
        "v1",
        "--version",
        "v2",
        "--workspace",
        eval_ws.slug,
    )
    assert "-0.500" in table
    assert "changed: demo.echo a: v1 pass, v2 fail" in table


def test_version_needs_one_prompt_and_must_exist(library: PromptLibrary, eval_ws: Workspace):
    with pytest.raises(CommandError, match="exactly one --prompt"):
        evals("run", "--version", "v1", "--workspace", eval_ws.slug)
    with pytest.raises(CommandError, match=r"no version 'v9' \(versions: v1, v2\)"):
        evals("run", "--prompt", "demo.echo", "--version", "v9", "--workspace", eval_ws.slug)
    with pytest.raises(CommandError, match="No workspace"):
        evals("run", "--workspace", "nope")


def test_a_malformed_eval_set_stops_the_run_with_its_line(
    library: PromptLibrary, eval_ws: Workspace
):
    path = library.root / "demo.echo" / "eval.jsonl"
    path.write_text(path.read_text() + '{"id": "broken"\n')
    with pytest.raises(CommandError, match=r"eval\.jsonl line 4: not valid JSON"):
        evals("run", "--prompt", "demo.echo", "--workspace", eval_ws.slug)


def test_the_gate_fails_a_regression_and_passes_otherwise(
    library: PromptLibrary, eval_ws: Workspace, settings, tmp_path: Path
):
    settings.EVALS_BASELINE_DIR = str(tmp_path / "baselines")
    # a missing baseline says how to create it
    with pytest.raises(CommandError, match="eval gate"):
        evals("compare", "--prompt", "demo.echo", "--base", "HEAD", "--workspace", eval_ws.slug)
    # record v1's baseline: the gate passes
    evals("baseline", "--prompt", "demo.echo", "--workspace", eval_ws.slug)
    out, _ = evals(
        "compare", "--prompt", "demo.echo", "--base", "HEAD", "--workspace", eval_ws.slug
    )
    assert "eval gate: passed" in out
    # switch to v2 without re-recording: stale baseline
    (library.root / "config.yaml").write_text("active:\n  demo.echo: v2\n  evals.judge: v1\n")
    from apps.llm.prompts import clear_caches

    clear_caches()
    err = StringIO()
    with pytest.raises(CommandError):
        call_command(
            "evals",
            "compare",
            "--prompt",
            "demo.echo",
            "--base",
            "HEAD",
            "--workspace",
            eval_ws.slug,
            stdout=StringIO(),
            stderr=err,
        )
    assert "no baseline for v2@smart/local-smart" in err.getvalue()


def test_the_gate_compares_with_the_base_refs_baseline(
    library: PromptLibrary, eval_ws: Workspace, settings, tmp_path: Path
):
    from apps.evals.baselines import Measured, gate
    from apps.evals.report import measured

    [v1, v2] = evals_run(
        library=library, workspace=eval_ws, prompts=["demo.echo"], versions=["v1", "v2"]
    )
    base = {"demo.echo": {measured(v1).key: measured(v1).entry()}}
    head = {"demo.echo": {measured(v2).key: measured(v2).entry()}}
    findings = gate([measured(v2)], head, base, base_ref="origin/main")
    [failure] = [f for f in findings if not f.ok]
    assert "50.0% below the baseline 1.000" in failure.message
    assert isinstance(measured(v1), Measured)


def test_a_judge_that_answers_non_json_is_a_failed_judgement(
    library: PromptLibrary, eval_ws: Workspace, tmp_path: Path
):
    # a judge version without a response schema: the offline model answers prose, not JSON
    folder = library.root / "evals.judge"
    body = (folder / "v1.md").read_text().split("---\n", 2)[2]
    (folder / "v2.md").write_text("---\nrole: user\nalias: fast\n---\n" + body)
    judge_library = PromptLibrary(library.root, {"evals.judge": "v2"})
    scope = call_scope_for(workspace=eval_ws, actor=Actor("system", "tests"), feature="evals.judge")
    ports = GatewayPorts(judge_library, scope, scope)
    verdict = run_sync(ports.judge(criteria="is polite", input="hi", output="hello"))
    assert not verdict.valid
    assert not verdict.passed
    assert verdict.score == 0.0
    assert "did not answer JSON" in verdict.reason


def test_the_committed_prompts_evaluate_offline(eval_ws: Workspace):
    """Every committed prompt through the gateway: the numbers the baselines record."""
    runs = evals_run(
        library=PromptLibrary(Path(__file__).resolve().parents[2] / "prompts"),
        workspace=eval_ws,
        concurrency=8,
    )
    assert {r.prompt_name for r in runs} >= {"chat.system", "conversation.title", "evals.judge"}
    committed = {
        r.prompt_name: json.loads(
            (
                Path(__file__).resolve().parents[2]
                / "evals"
                / "baselines"
                / f"{r.prompt_name}.json"
            ).read_text()
        )
        for r in runs
    }
    for run in runs:
        entry = committed[run.prompt_name]["entries"][
            f"{run.prompt_version}@{run.alias}/{run.model}"
        ]
        assert run.score == pytest.approx(entry["score"], abs=0.002), run.prompt_name
        assert run.errors == 0
