"""`evals run`: each prompt version on its eval set, through the gateway, scored and stored.

Every model call goes through the gateway (`allm_chat` / `allm_embed`) in one workspace, so
evals are budgeted, metered and traced like any feature (features `evals.<prompt>`,
`evals.judge`, `evals.similarity`). Examples run concurrently; results are stored once all
of a version's examples are scored.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.llm.adapters import run_sync
from apps.llm.config import call_scope_for
from apps.llm.core.context import Actor, CallScope
from apps.llm.core.errors import GatewayError
from apps.llm.core.types import ChatRequest, ChatResponse, EmbedRequest, Message
from apps.llm.prompts import PromptLibrary, PromptVersion, RenderedPrompt
from apps.llm.services import allm_chat, allm_embed
from apps.traces.services import call_records_flush
from apps.workspaces.models import Workspace
from apps.workspaces.selectors import workspace_by_slug
from apps.workspaces.services import system_workspace_get_or_create

from .dataset import EvalExample, load_eval_set
from .models import EvalResult, EvalRun
from .scorers import CheckResult, Judgement, Vectors, parse_judgement, score_example, summarise

ACTOR = Actor("system", "evals")
JUDGE_PROMPT = "evals.judge"


def eval_workspace(*, slug: str | None = None) -> Workspace:
    """The workspace eval calls are made in: `slug`, else settings.EVALS_WORKSPACE, which is
    created on first use as a system workspace (enterprise plan, owned by a user that cannot
    log in)."""
    slug = slug or settings.EVALS_WORKSPACE
    if slug != settings.EVALS_WORKSPACE:
        found = workspace_by_slug(slug=slug)
        if found is None:
            raise LookupError(f"No workspace “{slug}”.")
        return found
    return system_workspace_get_or_create(slug=slug, name="Evals (system)")


@dataclass
class GatewayPorts:
    """The scorers' model calls, through the gateway: embeddings and the versioned judge."""

    library: PromptLibrary
    embed_scope: CallScope
    judge_scope: CallScope
    judge_alias: str | None = None

    async def embed(self, texts: tuple[str, ...]) -> Vectors:
        reply = await allm_embed(
            scope=self.embed_scope, request=EmbedRequest(alias="embed", inputs=texts)
        )
        return Vectors(reply.vectors, reply.cost_micros)

    async def judge(self, *, criteria: str, input: str, output: str) -> Judgement:
        prompt = self.library.render(
            JUDGE_PROMPT, {"criteria": criteria, "input": input, "output": output}
        )
        try:
            # The exact cache may answer: the same output under the same criteria gets the
            # same verdict, and re-judging unchanged outputs costs nothing.
            reply = await allm_chat(
                scope=self.judge_scope, request=_request(prompt, None, alias=self.judge_alias)
            )
        except GatewayError as exc:  # incl. a reply that is not the JSON asked for
            return Judgement(False, 0.0, f"the judge failed: {exc.message}", valid=False)
        verdict = parse_judgement(reply.text)
        return Judgement(
            verdict.passed,
            verdict.score,
            verdict.reason,
            verdict.valid,
            offline=reply.offline,
            cost_micros=reply.cost_micros,
        )


def _request(
    prompt: RenderedPrompt, user_input: str | None, *, alias: str | None, cache: bool = True
) -> ChatRequest:
    """The call the product makes with this prompt: the text as the system message (and the
    example's input as the user's), or as the one user message."""
    messages: tuple[Message, ...]
    if prompt.role == "system":
        messages = (Message("system", prompt.text), Message("user", user_input or ""))
    else:
        messages = (Message("user", prompt.text),)
    return ChatRequest(
        alias=alias or prompt.alias,
        messages=messages,
        max_tokens=prompt.max_tokens,
        response_format=prompt.response_format(),
        cache=cache,
        **prompt.request_fields(),
    )


@dataclass
class ExampleOutcome:
    example: EvalExample
    output: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    error: str = ""
    response: ChatResponse | None = None
    latency_ms: float = 0.0

    @property
    def score(self) -> tuple[float, bool]:
        if self.error:
            return 0.0, False
        return summarise(self.checks)


async def _evaluate(
    example: EvalExample,
    prompt: PromptVersion,
    library: PromptLibrary,
    scope: CallScope,
    ports: GatewayPorts,
    *,
    alias: str | None,
    cache: bool,
) -> ExampleOutcome:
    outcome = ExampleOutcome(example)
    try:
        rendered = library.render(prompt.name, example.vars, version=prompt.version)
    except Exception as exc:  # an example that does not fit this version is its failure
        outcome.error = f"render: {exc}"
        return outcome
    started = time.perf_counter()
    try:
        response = await allm_chat(
            scope=scope, request=_request(rendered, example.input, alias=alias, cache=cache)
        )
    except GatewayError as exc:
        outcome.error = f"{exc.code}: {exc.message}"
        return outcome
    outcome.latency_ms = (time.perf_counter() - started) * 1000
    outcome.response, outcome.output = response, response.text
    try:
        outcome.checks = await score_example(
            example,
            response.text,
            offline=response.offline,
            ports=ports,
            response_schema=prompt.response_schema,
        )
    except GatewayError as exc:  # an embedding call failed: the example cannot be scored
        outcome.error = f"scoring: {exc.code}: {exc.message}"
    return outcome


async def _evaluate_all(
    examples: list[EvalExample],
    prompt: PromptVersion,
    library: PromptLibrary,
    scope: CallScope,
    ports: GatewayPorts,
    *,
    alias: str | None,
    cache: bool,
    concurrency: int,
) -> list[ExampleOutcome]:
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(example: EvalExample) -> ExampleOutcome:
        async with gate:
            return await _evaluate(example, prompt, library, scope, ports, alias=alias, cache=cache)

    return list(await asyncio.gather(*(one(e) for e in examples)))


def eval_set_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _git_commit() -> str:
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


def judge_agreement(outcomes: list[ExampleOutcome]) -> float | None:
    """For a judge prompt: the share of human-labelled examples whose verdict matches the label."""
    labelled = [o for o in outcomes if isinstance(o.example.label.get("pass"), bool)]
    if not labelled:
        return None
    verdicts = [(parse_judgement(o.output), o.example.label["pass"]) for o in labelled]
    agreed = sum(1 for verdict, label in verdicts if verdict.valid and verdict.passed == label)
    return agreed / len(labelled)


def evals_run(
    *,
    library: PromptLibrary,
    workspace: Workspace,
    prompts: list[str] | None = None,
    versions: list[str] | None = None,
    alias: str | None = None,
    judge_alias: str | None = None,
    cache: bool = False,
    concurrency: int = 4,
) -> list[EvalRun]:
    """Evaluate `versions` (default: the active one) of each prompt; store and return the runs.

    The same examples run for every version, so `versions=["v1", "v2"]` compares them side by
    side. `cache=False` (the default) bypasses the exact cache for outputs, so cost and latency
    are measured, not remembered.
    """
    names = prompts or library.names()
    batch = uuid.uuid4()
    commit = _git_commit()
    judge_scope = call_scope_for(workspace=workspace, actor=ACTOR, feature="evals.judge")
    embed_scope = call_scope_for(workspace=workspace, actor=ACTOR, feature="evals.similarity")
    ports = GatewayPorts(library, embed_scope, judge_scope, judge_alias)
    runs: list[EvalRun] = []
    try:
        for name in names:
            eval_path = library.root / name / "eval.jsonl"
            examples = load_eval_set(eval_path)
            scope = call_scope_for(workspace=workspace, actor=ACTOR, feature=f"evals.{name}")
            for version in versions or [library.active_version(name)]:
                prompt = library.load(name, version)
                started = timezone.now()
                outcomes = run_sync(
                    _evaluate_all(
                        examples,
                        prompt,
                        library,
                        scope,
                        ports,
                        alias=alias,
                        cache=cache,
                        concurrency=concurrency,
                    )
                )
                runs.append(
                    _store(
                        batch=batch,
                        prompt=prompt,
                        eval_hash=eval_set_hash(eval_path),
                        alias=alias or prompt.alias,
                        workspace=workspace,
                        commit=commit,
                        outcomes=outcomes,
                        started=started,
                        is_judge=name == JUDGE_PROMPT,
                    )
                )
    finally:
        call_records_flush()  # the calls' logs and traces exist when the command returns
    return runs


def _store(
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
