"""Baselines and the regression gate. Plain Python (git through subprocess).

`evals/baselines/<prompt>.json` holds one entry per active version, alias and model:

    {"prompt": "chat.system",
     "entries": {"v1@smart/local-smart": {"score": 0.81, "pass_rate": 0.95, "examples": 22,
                                          "content_hash": "…", "eval_hash": "…", "offline": true}}}

`gate` fails a prompt when the committed baseline is missing or stale (the prompt or its eval
set changed since it was recorded), or when the score drops more than `max_drop` (relative)
below the baseline at HEAD or at the base ref (the branch the change will merge into).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MAX_DROP = 0.05
HOW_TO_RECORD = "python manage.py evals baseline --prompt {prompt}"


@dataclass(frozen=True, slots=True)
class Measured:
    """What one run measured, as the gate and the baseline file see it."""

    prompt: str
    version: str
    alias: str
    model: str
    score: float
    pass_rate: float
    examples: int
    content_hash: str
    eval_hash: str
    offline: bool

    @property
    def key(self) -> str:
        return f"{self.version}@{self.alias}/{self.model}"

    def entry(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("prompt", "version", "alias", "model"):
            data.pop(name)
        data["score"] = round(self.score, 4)
        data["pass_rate"] = round(self.pass_rate, 4)
        return data


@dataclass(frozen=True, slots=True)
class Finding:
    prompt: str
    ok: bool
    message: str


class BaselineError(ValueError):
    pass


def baseline_path(directory: Path, prompt: str) -> Path:
    return directory / f"{prompt}.json"


def baseline_load(text: str | None, *, source: str) -> dict[str, dict[str, Any]] | None:
    """A baseline file's entries; None when there is no file."""
    if text is None:
        return None
    try:
        data = json.loads(text)
        entries = data["entries"]
        if not isinstance(entries, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError) as exc:
        raise BaselineError(f"{source} is not a baseline file ({exc or 'bad shape'}).") from exc
    return entries


def baseline_write(directory: Path, runs: list[Measured]) -> list[Path]:
    """Write each prompt's file from `runs` (its active versions), keeping entries of other
    aliases and models so one file serves the offline gate and real-model runs."""
    written = []
    for prompt in sorted({r.prompt for r in runs}):
        path = baseline_path(directory, prompt)
        ours = [r for r in runs if r.prompt == prompt]
        kept = baseline_load(path.read_text() if path.exists() else None, source=str(path)) or {}
        # Entries of the same alias and model from another version are replaced: the file
        # describes the active version.
        replaced = {r.key.split("@", 1)[1] for r in ours}
        entries = {k: v for k, v in kept.items() if k.split("@", 1)[1] not in replaced}
        entries.update({r.key: r.entry() for r in ours})
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"prompt": prompt, "entries": dict(sorted(entries.items()))}
        path.write_text(json.dumps(body, indent=2, sort_keys=False) + "\n")
        written.append(path)
    return written


def git_show(ref: str, path: str, *, cwd: Path) -> str | None:
    """`path` as it is at `ref`; None if it does not exist there. An unknown ref raises."""
    verify = subprocess.run(  # noqa: S603 (git with our own arguments, no shell)
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],  # noqa: S607
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )
    if verify.returncode != 0:
        raise BaselineError(f"Unknown git ref {ref!r}.")
    found = subprocess.run(  # noqa: S603 (git with our own arguments, no shell)
        ["git", "show", f"{ref}:{path}"],  # noqa: S607
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )
    return found.stdout if found.returncode == 0 else None


def _same_route(entries: Mapping[str, Any], run: Measured) -> tuple[str, dict[str, Any]] | None:
    route = run.key.split("@", 1)[1]
    for key, entry in entries.items():
        if key.split("@", 1)[1] == route:
            return key, entry
    return None


def _drop(
    prompt: str, run: Measured, key: str, entry: dict[str, Any], where: str, max_drop: float
) -> Finding:
    base = float(entry["score"])
    drop = (base - run.score) / base if base > 0 else 0.0
    harder = (
        " The eval set changed too: if its new examples are harder on purpose, say so in the "
        "review and run the gate with --max-drop."
        if entry.get("eval_hash") != run.eval_hash
        else ""
    )
    if drop > max_drop:
        return Finding(
            prompt,
            False,
            f"{prompt} {run.key}: score {run.score:.3f} is {drop:.1%} below the baseline "
            f"{base:.3f} ({key} {where}); the gate allows {max_drop:.0%}. Fix the prompt or "
            f"the examples, and compare versions with `evals run --prompt {prompt} "
            f"--version <old> --version <new>`.{harder}",
        )
    return Finding(prompt, True, f"{prompt} {run.key}: {run.score:.3f} vs {base:.3f} {where} ok")


def gate(
    runs: list[Measured],
    head: Mapping[str, dict[str, dict[str, Any]] | None],
    base: Mapping[str, dict[str, dict[str, Any]] | None],
    *,
    base_ref: str,
    max_drop: float = MAX_DROP,
) -> list[Finding]:
    """One finding per check; any finding with ok=False fails the gate."""
    findings: list[Finding] = []
    for run in runs:
        how = HOW_TO_RECORD.format(prompt=run.prompt)
        file = f"evals/baselines/{run.prompt}.json"
        entries = head.get(run.prompt)
        recorded = (entries or {}).get(run.key)
        if recorded is None:
            reason = "there is no " + file if entries is None else f"{file} has no entry {run.key}"
            findings.append(
                Finding(
                    run.prompt,
                    False,
                    f"{run.prompt}: no baseline for {run.key} ({reason}). Create it with "
                    f"`{how}` and commit {file}.",
                )
            )
            continue
        stale = [
            what
            for what, field in (
                (f"prompts/{run.prompt}/{run.version}.md", "content_hash"),
                (f"prompts/{run.prompt}/eval.jsonl", "eval_hash"),
            )
            if recorded.get(field) != getattr(run, field)
        ]
        if stale:
            findings.append(
                Finding(
                    run.prompt,
                    False,
                    f"{run.prompt}: {' and '.join(stale)} changed since {file} was recorded; "
                    f"no prompt change without an eval run. Run `{how}`, review the score "
                    f"change and commit {file} (a new prompt version belongs in a new file).",
                )
            )
            continue
        findings.append(_drop(run.prompt, run, run.key, recorded, "in the working tree", max_drop))
        base_entries = base.get(run.prompt)
        match = _same_route(base_entries or {}, run)
        if match is None:
            findings.append(
                Finding(run.prompt, True, f"{run.prompt}: no baseline at {base_ref} for this route")
            )
        else:
            findings.append(_drop(run.prompt, run, match[0], match[1], f"at {base_ref}", max_drop))
    return findings
