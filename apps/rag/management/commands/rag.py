"""RAG from the command line.

python manage.py rag eval --workspace acme --qrels FILE [--k 10] [--mode hybrid|lexical|dense|all]
    [--min-ndcg X] [--min-recall X] [--json]
python manage.py rag eval --load evals/rag/demo --qrels evals/rag/demo/qrels.jsonl [...]

python manage.py rag reembed --workspace acme [--model provider:model]

The question file is JSONL (apps/rag/evaluation/qrels.py; README, "Retrieval evals"). Exits
non-zero when a given threshold is missed by any mode evaluated.

`reembed` switches the workspace's documents to another embedding model on Celery (default:
what the `embed` alias answers with now; apps/rag/reembed.py). Run again, it resumes a
switch; naming the model the documents already use stops one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.common.errors import ApplicationError
from apps.rag.evaluation.qrels import qrels_load
from apps.rag.evaluation.service import (
    EVAL_WORKSPACE,
    EvalReport,
    ModeReport,
    rag_eval_workspace,
    retrieval_eval,
)
from apps.rag.reembed import reembed_start
from apps.rag.retrieval import MODES, Mode
from apps.workspaces.selectors import workspace_by_slug


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("a threshold is between 0 and 1")
    return value


class Command(BaseCommand):
    help = (
        "RAG tools: `eval` scores retrieval on a question file; `reembed` switches a "
        "workspace's documents to another embedding model in the background."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        run = sub.add_parser(
            "eval", help="Run a JSONL question file through search_chunks and score it."
        )
        run.add_argument("--qrels", required=True, type=Path, help="the JSONL question file")
        run.add_argument(
            "--workspace",
            default=None,
            help=f"workspace slug whose documents are searched (with --load: {EVAL_WORKSPACE})",
        )
        run.add_argument(
            "--load",
            type=Path,
            default=None,
            help="a folder of documents to add and index for this run only (rolled back after)",
        )
        run.add_argument("--k", type=int, default=10, help="documents read by recall@k and MRR")
        run.add_argument("--mode", choices=[*MODES, "all"], default="hybrid")
        run.add_argument("--min-ndcg", type=_share, default=None, help="fail below this nDCG@10")
        run.add_argument("--min-recall", type=_share, default=None, help="fail below this recall@k")
        run.add_argument("--json", action="store_true", dest="as_json")
        switch = sub.add_parser(
            "reembed", help="Re-embed a workspace's documents with another model, on Celery."
        )
        switch.add_argument("--workspace", required=True, help="the workspace's slug")
        switch.add_argument(
            "--model",
            default=None,
            help="provider:model to switch to (default: what the `embed` alias answers with now)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "reembed":
            self._reembed(options["workspace"], options["model"])
            return
        slug = options["workspace"]
        if slug is None and options["load"] is None:
            raise CommandError("Name the workspace to search (--workspace) or a folder to --load.")
        modes: tuple[Mode, ...] = MODES if options["mode"] == "all" else (options["mode"],)
        try:
            queries = qrels_load(options["qrels"])
            if slug is None:
                workspace = rag_eval_workspace()
            else:
                found = workspace_by_slug(slug=slug)
                if found is None:
                    raise CommandError(f"No workspace “{slug}”.")
                workspace = found
            report = retrieval_eval(
                workspace=workspace,
                queries=queries,
                k=options["k"],
                modes=modes,
                load=options["load"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if options["as_json"]:
            self.stdout.write(json.dumps(report.as_json(), indent=2))
        else:
            self.stdout.write(render(report))
        misses = report.misses(min_ndcg=options["min_ndcg"], min_recall=options["min_recall"])
        if misses:
            raise CommandError("Retrieval eval below its threshold: " + "; ".join(misses) + ".")

    def _reembed(self, slug: str, model: str | None) -> None:
        workspace = workspace_by_slug(slug=slug)
        if workspace is None:
            raise CommandError(f"No workspace “{slug}”.")
        try:
            index = reembed_start(workspace=workspace, model=model)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if index.status == index.Status.SWITCHING:
            self.stdout.write(
                f"Switching {slug}'s documents from {index.model} to {index.target_model} on "
                f"Celery: {index.done:,} of {index.total:,} chunks done. Search uses "
                f"{index.model} until every chunk is done; progress shows on the Documents page."
            )
        else:
            self.stdout.write(f"Stopped the switch: {slug}'s documents stay on {index.model}.")


def render(report: EvalReport) -> str:
    k = report.k
    queries = len(report.modes[0].results)
    loaded = f" ({len(report.loaded)} loaded for this run)" if report.loaded else ""
    lines = [
        f"Retrieval eval of workspace {report.workspace}: {report.documents} documents{loaded}, "
        f"{report.chunks} chunks, {queries} questions",
        f"  {'mode':<9}{f'recall@{k}':>11}{f'MRR@{k}':>9}{'nDCG@10':>9}{'p50 ms':>9}{'p95 ms':>9}",
        *(
            f"  {m.mode:<9}{m.recall:>11.3f}{m.mrr:>9.3f}{m.ndcg:>9.3f}"
            f"{m.p50_ms:>9.1f}{m.p95_ms:>9.1f}"
            for m in report.modes
        ),
    ]
    for mode in report.modes:
        lines += _failures(mode, k, queries)
    return "\n".join(lines)


def _failures(mode: ModeReport, k: int, queries: int) -> list[str]:
    failures = mode.failures
    if not failures:
        return [f"{mode.mode}: every question found all its relevant documents in the top {k}."]
    lines = [
        f"{mode.mode}: {len(failures)} of {queries} questions missed a relevant document "
        f"in the top {k}:"
    ]
    for r in failures:
        lines += [
            f"  line {r.query.line}: {r.query.query}",
            f"    expected: {', '.join(r.query.relevant)} (missing: {', '.join(r.missing)})",
            f"    found:    {', '.join(r.found[:k]) or '(nothing)'}",
        ]
    return lines
