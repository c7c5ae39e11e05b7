"""Eval runner and regression gate.

python manage.py evals run [--prompt NAME ...] [--version vN ...] [--alias smart] [--json]
python manage.py evals baseline [--prompt NAME ...]      record evals/baselines/<prompt>.json
python manage.py evals compare --base origin/main          exit 1 when a prompt regressed
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.evals.baselines import (
    BaselineError,
    baseline_load,
    baseline_path,
    baseline_write,
    gate,
    git_show,
)
from apps.evals.dataset import EvalDataError
from apps.evals.models import EvalRun
from apps.evals.report import changed_verdicts, measured, run_json, table
from apps.evals.runner import eval_workspace, evals_run
from apps.llm.prompts import PromptError, default_library


class Command(BaseCommand):
    help = "Run prompt evals through the gateway, record baselines, gate regressions."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        for name, text in (
            ("run", "Evaluate prompts on their eval sets and print a table."),
            ("baseline", "Evaluate the active versions and write evals/baselines/<prompt>.json."),
            ("compare", "Evaluate the active versions; exit 1 on a regression against baselines."),
        ):
            cmd = sub.add_parser(name, help=text)
            cmd.add_argument("--prompt", action="append", dest="prompts", help="repeatable")
            cmd.add_argument("--alias", default=None, help="override each prompt's alias")
            cmd.add_argument("--judge-alias", default=None)
            cmd.add_argument(
                "--workspace",
                default=None,
                help=f"workspace slug the calls are made in (default: {settings.EVALS_WORKSPACE}, "
                "created on first use)",
            )
            cmd.add_argument("--concurrency", type=int, default=4)
            cmd.add_argument("--json", action="store_true", dest="as_json")
        sub.choices["run"].add_argument(
            "--version", action="append", dest="versions", help="repeatable: side by side"
        )
        sub.choices["run"].add_argument(
            "--cache", action="store_true", help="let the exact cache answer (cost 0)"
        )
        compare = sub.choices["compare"]
        compare.add_argument("--base", required=True, help="git ref, e.g. origin/main")
        compare.add_argument("--max-drop", type=float, default=0.05)

    def handle(self, *args: Any, **options: Any) -> None:
        library = default_library()
        try:
            workspace = eval_workspace(slug=options["workspace"])
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
        versions = options.get("versions")
        if versions and len(options["prompts"] or []) != 1:
            raise CommandError("--version needs exactly one --prompt.")
        try:
            runs = evals_run(
                library=library,
                workspace=workspace,
                prompts=options["prompts"],
                versions=versions,
                alias=options["alias"],
                judge_alias=options["judge_alias"],
                cache=options.get("cache", False),
                concurrency=options["concurrency"],
            )
        except (PromptError, EvalDataError) as exc:
            raise CommandError(str(exc)) from exc
        if options["as_json"]:
            self.stdout.write(json.dumps([run_json(r) for r in runs], indent=2))
        else:
            self.stdout.write(table(runs))
            for line in changed_verdicts(runs):
                self.stdout.write(f"  changed: {line}")
        if options["action"] == "baseline":
            written = baseline_write(Path(settings.EVALS_BASELINE_DIR), [measured(r) for r in runs])
            for path in written:
                self.stderr.write(f"wrote {path}")
        elif options["action"] == "compare":
            self._compare(runs, base_ref=options["base"], max_drop=options["max_drop"])

    def _compare(self, runs: list[EvalRun], *, base_ref: str, max_drop: float) -> None:
        directory = Path(settings.EVALS_BASELINE_DIR)
        repo = Path(settings.BASE_DIR).resolve()
        # A baseline folder outside the repository has no history: only its own files count.
        relative = (
            directory.resolve().relative_to(repo)
            if directory.resolve().is_relative_to(repo)
            else None
        )
        names = sorted({r.prompt_name for r in runs})
        try:
            head = {
                n: baseline_load(
                    baseline_path(directory, n).read_text()
                    if baseline_path(directory, n).exists()
                    else None,
                    source=str(baseline_path(directory, n)),
                )
                for n in names
            }
            base = {
                n: baseline_load(
                    git_show(base_ref, f"{relative}/{n}.json", cwd=repo),
                    source=f"{base_ref}:{relative}/{n}.json",
                )
                if relative is not None
                else None
                for n in names
            }
        except BaselineError as exc:
            raise CommandError(str(exc)) from exc
        findings = gate(
            [measured(r) for r in runs], head, base, base_ref=base_ref, max_drop=max_drop
        )
        for finding in findings:
            (self.stdout if finding.ok else self.stderr).write(
                ("ok    " if finding.ok else "FAIL  ") + finding.message
            )
        failed = [f for f in findings if not f.ok]
        if failed:
            raise CommandError(f"eval gate: {len(failed)} problem(s); see FAIL lines above.")
        self.stdout.write("eval gate: passed")
