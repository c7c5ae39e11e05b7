"""Which files a change touches, and whether they call for an eval run (CI path detection).

    python -m apps.evals.changes --base origin/main   # exit 0: run the evals; 1: not needed

Plain Python: git through subprocess. The change is the merge base with `base` against the
working tree (committed, staged and unstaged edits, and new untracked files). A base ref that
does not exist (a shallow clone, a first commit) means "run them": the safe answer.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

# The prompt files and eval data, and the code that loads and scores them.
EVAL_PATHS = ("prompts/", "evals/", "apps/evals/", "apps/llm/prompts.py")


def needs_evals(paths: Iterable[str]) -> list[str]:
    """The paths among `paths` that call for an eval run."""
    return [p for p in paths if p.startswith(EVAL_PATHS)]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(  # noqa: S603 (git with our own arguments, no shell)
        ["git", *args],  # noqa: S607 (git from PATH, as CI and developers run it)
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
    ).stdout


def changed_paths(base: str, *, cwd: Path) -> list[str] | None:
    """Paths changed since the merge base of HEAD and `base`; None if there is no merge base."""
    try:
        merge_base = _git("merge-base", "HEAD", base, cwd=cwd).strip()
    except subprocess.CalledProcessError:
        return None
    changed = _git("diff", "--name-only", merge_base, cwd=cwd).split()
    untracked = _git("ls-files", "--others", "--exclude-standard", cwd=cwd).split()
    return sorted(set(changed) | set(untracked))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="origin/main")
    parser.add_argument("--repo", default=".")
    args = parser.parse_args(argv)
    paths = changed_paths(args.base, cwd=Path(args.repo))
    if paths is None:
        print(f"evals: no merge base with {args.base}; running them to be safe")
        return 0
    hits = needs_evals(paths)
    if hits:
        print(f"evals: {len(hits)} changed path(s) need an eval run, e.g. {', '.join(hits[:3])}")
        return 0
    print(f"evals: nothing under {', '.join(EVAL_PATHS)} changed since {args.base}; skipped")
    return 1


if __name__ == "__main__":
    sys.exit(main())
