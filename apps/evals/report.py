"""How `evals run` prints: a table per prompt and version, and the runs as JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .baselines import Measured
from .models import EvalRun

HEADERS = (
    "prompt",
    "version",
    "alias",
    "model",
    "n",
    "score",
    "pass rate",
    "Δ score",
    "cost $",
    "p50 ms",
    "p95 ms",
    "errors",
)


def measured(run: EvalRun) -> Measured:
    return Measured(
        prompt=run.prompt_name,
        version=run.prompt_version,
        alias=run.alias,
        model=run.model,
        score=run.score,
        pass_rate=run.pass_rate,
        examples=run.examples,
        content_hash=run.content_hash,
        eval_hash=run.eval_hash,
        offline=run.offline,
    )


def run_json(run: EvalRun) -> dict[str, Any]:
    return {
        **asdict(measured(run)),
        "score": round(run.score, 4),
        "pass_rate": round(run.pass_rate, 4),
        "passed": run.passed,
        "errors": run.errors,
        "cost_micros": run.cost_micros,
        "latency_ms_p50": round(run.latency_ms_p50, 1),
        "latency_ms_p95": round(run.latency_ms_p95, 1),
        "judge_agreement": run.judge_agreement,
        "provider": run.provider,
        "run_id": run.pk,
        "batch": str(run.batch),
    }


def table(runs: list[EvalRun]) -> str:
    """One row per prompt version; versions of one prompt sit together, Δ against the first."""
    rows: list[tuple[str, ...]] = []
    first: dict[str, EvalRun] = {}
    for run in runs:
        base = first.setdefault(run.prompt_name, run)
        delta = "" if base is run else f"{run.score - base.score:+.3f}"
        model = f"{run.model} (offline)" if run.offline else run.model
        rows.append(
            (
                run.prompt_name,
                run.prompt_version,
                run.alias,
                model,
                str(run.examples),
                f"{run.score:.3f}",
                f"{run.pass_rate:.0%}",
                delta,
                f"{run.cost_micros / 1e6:.4f}",
                f"{run.latency_ms_p50:.0f}",
                f"{run.latency_ms_p95:.0f}",
                str(run.errors),
            )
        )
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(HEADERS)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    for run in runs:
        if run.judge_agreement is not None:
            note = " — an offline judge answers at random: not meaningful" if run.offline else ""
            lines.append(
                f"judge agreement with human labels ({run.prompt_name} {run.prompt_version}): "
                f"{run.judge_agreement:.0%}{note}"
            )
    return "\n".join(lines)


def changed_verdicts(runs: list[EvalRun]) -> list[str]:
    """Side by side: the examples whose pass/fail differs between versions of a prompt."""
    lines = []
    by_prompt: dict[str, list[EvalRun]] = {}
    for run in runs:
        by_prompt.setdefault(run.prompt_name, []).append(run)
    for name, group in by_prompt.items():
        if len(group) < 2:
            continue
        verdicts = [dict(r.results.values_list("example_id", "passed")) for r in group]
        for example_id in verdicts[0]:
            seen = [v.get(example_id) for v in verdicts]
            if len(set(seen)) > 1:
                marks = ", ".join(
                    f"{r.prompt_version} {'pass' if ok else 'fail'}"
                    for r, ok in zip(group, seen, strict=True)
                )
                lines.append(f"{name} {example_id}: {marks}")
    return lines
