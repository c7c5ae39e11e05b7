"""Question files for retrieval evals: JSONL, one question per line.

    {"query": "How many days of leave do I get?", "relevant": ["holidays.md"]}
    {"query": "Who acknowledges a SEV1 page?", "relevant": {"on-call.md": 2, "incidents.md": 1}}

`relevant` names documents by title or file name, since document ids differ between
workspaces: a list (each grade 1) or an object of name → grade (a whole number ≥ 1; nDCG gains
are the grades). An optional "id" names the question in reports. Blank lines are skipped; any
other line that is not such an object is an error naming its line number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.common.errors import ApplicationError

KEYS = frozenset({"id", "query", "relevant"})
MAX_QUERIES = 10_000


class EvalDataError(ApplicationError):
    """A question file or a document folder that cannot be evaluated, and why."""


@dataclass(frozen=True, slots=True)
class EvalQuery:
    line: int  # in the file, from 1
    id: str
    query: str
    relevant: dict[str, int]  # document title or file name → grade ≥ 1


def qrels_load(path: Path) -> list[EvalQuery]:
    """The questions of the JSONL file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalDataError(f"No such question file: {path}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"Cannot read {path}: {exc}.") from None
    return qrels_parse(text.splitlines(), source=str(path))


def qrels_parse(lines: list[str], *, source: str = "qrels") -> list[EvalQuery]:
    queries = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            queries.append(_query(line, number, source))
    if not queries:
        raise EvalDataError(f"{source}: no questions.")
    if len(queries) > MAX_QUERIES:
        raise EvalDataError(f"{source}: {len(queries):,} questions; at most {MAX_QUERIES:,}.")
    return queries


def _query(line: str, number: int, source: str) -> EvalQuery:
    where = f"{source}, line {number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EvalDataError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno}).") from None
    if not isinstance(record, dict):
        raise EvalDataError(f"{where}: expected an object with “query” and “relevant”.")
    unknown = sorted(set(record) - KEYS)
    if unknown:
        raise EvalDataError(f"{where}: unknown key(s) {', '.join(unknown)}; use {sorted(KEYS)}.")
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise EvalDataError(f"{where}: “query” must be a non-empty string.")
    relevant = _relevant(record.get("relevant"), where)
    qid = record.get("id", str(number))
    if not isinstance(qid, str | int) or isinstance(qid, bool):
        raise EvalDataError(f"{where}: “id” must be a string or a number.")
    return EvalQuery(line=number, id=str(qid), query=query.strip(), relevant=relevant)


def _relevant(value: Any, where: str) -> dict[str, int]:
    if isinstance(value, list):
        pairs = [(name, 1) for name in value]
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        raise EvalDataError(
            f"{where}: “relevant” must be a list of document names or an object name → grade."
        )
    if not pairs:
        raise EvalDataError(f"{where}: “relevant” names no document.")
    grades: dict[str, int] = {}
    for name, grade in pairs:
        if not isinstance(name, str) or not name.strip():
            raise EvalDataError(f"{where}: a relevant document name must be a non-empty string.")
        if isinstance(grade, bool) or not isinstance(grade, int) or grade < 1:
            raise EvalDataError(f"{where}: the grade of “{name}” must be a whole number ≥ 1.")
        grades[name.strip()] = grade
    return grades
