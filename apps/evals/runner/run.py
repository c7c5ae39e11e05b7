"""The workspace evals run in, and the loop over prompts and versions."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.utils import timezone

from apps.llm.prompts import PromptLibrary
from apps.llm.services import Actor, call_scope_for, run_sync
from apps.traces.services import call_records_flush
from apps.workspaces.models import Workspace
from apps.workspaces.selectors import workspace_by_slug
from apps.workspaces.services import system_workspace_get_or_create

from ..dataset import load_eval_set
from ..models import EvalRun
from .examples import evaluate_all
from .ports import JUDGE_PROMPT, GatewayPorts
from .store import eval_run_store, eval_set_hash, git_commit

ACTOR = Actor("system", "evals")


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
    commit = git_commit()
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
                    evaluate_all(
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
                    eval_run_store(
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
