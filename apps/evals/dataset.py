"""Eval sets: `prompts/<name>/eval.jsonl`, one example per line, checked when loaded.

    {"id": "reset-password",                       unique in the file
     "vars": {"workspace_name": "Acme", …},        the prompt's variables (schema.json)
     "input": "How do I reset my password?",       system-role prompts: the user's message
     "reference": "Open Settings, then …",         optional: what a good answer says
     "label": {"pass": true},                      optional: a person's verdict (judge sets)
     "checks": [{"type": "contains", "value": "password"}, …]}

Every check may carry `path` (a dotted field of a JSON output), `when` ("offline" or "online":
counted only for outputs of that kind of model) and `why` (shown when it fails). Plain Python.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

CHECK_TYPES = frozenset(
    {"contains", "not_contains", "exact", "regex", "json_schema", "similarity", "judge"}
)
_COMMON = frozenset({"type", "path", "when", "why"})
_ARGS: dict[str, frozenset[str]] = {
    "contains": frozenset({"value", "values", "case_sensitive"}),
    "not_contains": frozenset({"value", "values", "case_sensitive"}),
    "exact": frozenset({"value"}),
    "regex": frozenset({"pattern", "ignore_case"}),
    "json_schema": frozenset({"schema"}),
    "similarity": frozenset({"min", "reference"}),
    "judge": frozenset({"criteria", "min"}),
}
_KEYS = frozenset({"id", "vars", "input", "reference", "label", "checks", "source"})


class EvalDataError(ValueError):
    """An eval set that cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class EvalExample:
    id: str
    vars: dict[str, Any]
    checks: tuple[dict[str, Any], ...]
    input: str | None = None
    reference: str | None = None
    label: dict[str, Any] = field(default_factory=dict)
    line: int = 0


def load_eval_set(path: Path) -> list[EvalExample]:
    """Every example of `path`; blank lines are skipped, anything malformed raises with its line."""
    if not path.exists():
        raise EvalDataError(f"{path} does not exist: every prompt needs an eval set.")
    examples: list[EvalExample] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            example = parse_example(json.loads(line), number)
        except json.JSONDecodeError as exc:
            raise EvalDataError(f"{path} line {number}: not valid JSON ({exc.msg}).") from exc
        except EvalDataError as exc:
            raise EvalDataError(f"{path} line {number}: {exc}") from exc
        if example.id in seen:
            raise EvalDataError(f"{path} line {number}: the id {example.id!r} is used twice.")
        seen.add(example.id)
        examples.append(example)
    return examples


def parse_example(data: Any, line: int) -> EvalExample:
    if not isinstance(data, dict):
        raise EvalDataError("an example must be a JSON object.")
    if extra := sorted(set(data) - _KEYS):
        raise EvalDataError(f"unknown key {extra[0]!r} (keys: {', '.join(sorted(_KEYS))}).")
    if not isinstance(data.get("id"), str) or not data["id"]:
        raise EvalDataError("`id` must be a non-empty string.")
    if not isinstance(data.get("vars", {}), dict):
        raise EvalDataError("`vars` must be an object.")
    for key in ("input", "reference"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise EvalDataError(f"`{key}` must be a string.")
    checks = data.get("checks")
    if not isinstance(checks, list) or not checks:
        raise EvalDataError("`checks` must be a non-empty list.")
    for index, check in enumerate(checks, start=1):
        _check(check, index, has_reference=data.get("reference") is not None)
    return EvalExample(
        id=data["id"],
        vars=data.get("vars", {}),
        checks=tuple(checks),
        input=data.get("input"),
        reference=data.get("reference"),
        label=data.get("label") or {},
        line=line,
    )


def _check(check: Any, index: int, *, has_reference: bool) -> None:
    where = f"check {index}"
    if not isinstance(check, dict) or check.get("type") not in CHECK_TYPES:
        kind = check.get("type") if isinstance(check, dict) else check
        raise EvalDataError(
            f"{where}: unknown type {kind!r} (types: {', '.join(sorted(CHECK_TYPES))})."
        )
    kind = check["type"]
    if extra := sorted(set(check) - _COMMON - _ARGS[kind]):
        raise EvalDataError(f"{where} ({kind}): unknown key {extra[0]!r}.")
    if check.get("when") not in (None, "offline", "online"):
        raise EvalDataError(f"{where}: `when` is offline or online, not {check['when']!r}.")
    if kind in ("contains", "not_contains"):
        values = check.get("values", [check["value"]] if "value" in check else None)
        if not values or not all(isinstance(v, str) and v for v in values):
            raise EvalDataError(f"{where} ({kind}): needs `value` or `values` (strings).")
    elif kind == "exact" and "value" not in check:
        raise EvalDataError(f"{where} (exact): needs `value`.")
    elif kind == "regex":
        try:
            re.compile(check.get("pattern", ""))
        except re.error as exc:
            raise EvalDataError(f"{where} (regex): bad pattern ({exc}).") from exc
        if not check.get("pattern"):
            raise EvalDataError(f"{where} (regex): needs `pattern`.")
    elif kind == "json_schema" and "schema" in check:
        try:
            jsonschema.Draft202012Validator.check_schema(check["schema"])
        except jsonschema.SchemaError as exc:
            raise EvalDataError(f"{where} (json_schema): bad schema ({exc.message}).") from exc
    elif kind == "similarity":
        low = check.get("min")
        if not isinstance(low, int | float) or not 0 <= low <= 1:
            raise EvalDataError(f"{where} (similarity): `min` must be a number from 0 to 1.")
        if not has_reference and not check.get("reference"):
            raise EvalDataError(f"{where} (similarity): needs a `reference` (check or example).")
    elif kind == "judge" and not (isinstance(check.get("criteria"), str) and check["criteria"]):
        raise EvalDataError(f"{where} (judge): needs `criteria`.")
