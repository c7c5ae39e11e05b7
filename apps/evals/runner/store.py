"""A prompt version's outcomes summarised into one `EvalRun` (score, cost, latency, judge
agreement, provenance) and stored with an `EvalResult` per example."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.llm.prompts import PromptVersion
from apps.workspaces.models import Workspace

from ..models import EvalResult, EvalRun
from ..scorers import parse_judgement
from .examples import ExampleOutcome


def eval_set_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_commit() -> str:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 (git from PATH, as every developer runs it)
            capture_output=True,
            text=True,
            check=True,
            cwd=settings.BASE_DIR,
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return found.stdout.strip()


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def judge_agreement(outcomes: list[ExampleOutcome]) -> float | None:
    """For a judge prompt: the share of human-labelled examples whose verdict matches the label."""
    labelled = [o for o in outcomes if isinstance(o.example.label.get("pass"), bool)]
    if not labelled:
        return None
    verdicts = [(parse_judgement(o.output), o.example.label["pass"]) for o in labelled]
    agreed = sum(1 for verdict, label in verdicts if verdict.valid and verdict.passed == label)
    return agreed / len(labelled)


def eval_run_store(
    *,
    batch: uuid.UUID,
    prompt: PromptVersion,
    eval_hash: str,
    alias: str,
    workspace: Workspace,
    commit: str,
    outcomes: list[ExampleOutcome],
    started: Any,
    is_judge: bool,
) -> EvalRun:
    """The run of one prompt version and its results, in one transaction."""
    answered = [o.response for o in outcomes if o.response is not None]
    scores = [o.score for o in outcomes]
    latencies = [o.latency_ms for o in outcomes if o.response is not None]
    cost = sum(r.cost_micros for r in answered) + sum(
        c.cost_micros for o in outcomes for c in o.checks
    )
    first = answered[0] if answered else None
    with transaction.atomic():
        run = EvalRun.objects.create(
            batch=batch,
            prompt_name=prompt.name,
            prompt_version=prompt.version,
            content_hash=prompt.content_hash,
            eval_hash=eval_hash,
            alias=alias,
            provider=first.provider if first else "",
            model=first.model if first else "",
            offline=bool(answered) and all(r.offline for r in answered),
            workspace=workspace,
            git_commit=commit,
            examples=len(outcomes),
            passed=sum(1 for _, ok in scores if ok),
            errors=sum(1 for o in outcomes if o.error),
            score=sum(s for s, _ in scores) / len(scores) if scores else 0.0,
            cost_micros=cost,
            latency_ms_p50=_percentile(latencies, 0.5),
            latency_ms_p95=_percentile(latencies, 0.95),
            judge_agreement=judge_agreement(outcomes) if is_judge else None,
            started_at=started,
            finished_at=timezone.now(),
        )
        EvalResult.objects.bulk_create(
            EvalResult(
                run=run,
                example_id=o.example.id,
                output=o.output,
                score=o.score[0],
                passed=o.score[1],
                checks=[c.as_dict() for c in o.checks],
                error=o.error,
                cost_micros=(o.response.cost_micros if o.response else 0)
                + sum(c.cost_micros for c in o.checks),
                latency_ms=o.latency_ms,
                trace_id=o.response.trace_id if o.response else "",
            )
            for o in outcomes
        )
    return run
