"""Scorers: one function per check type, each returning a `CheckResult` (score 0..1, passed).

Plain Python. Embedding similarity and LLM-as-judge need model calls: they go through the
`Ports` the runner hands in (the gateway in production, stubs in tests).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jsonschema

from .dataset import EvalExample

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check on one output. `counted` is False for checks whose `when` does not match the
    model that answered (and for judges that are themselves offline): shown, not scored."""

    type: str
    passed: bool
    score: float
    detail: str = ""
    counted: bool = True
    cost_micros: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "passed": self.passed,
            "score": round(self.score, 4),
            "detail": self.detail,
            "counted": self.counted,
            "cost_micros": self.cost_micros,
        }


@dataclass(frozen=True, slots=True)
class Judgement:
    """A judge's verdict. `valid` is False when its reply was not the JSON asked for: that
    counts as a failed judgement, never as a crash."""

    passed: bool
    score: float
    reason: str
    valid: bool = True
    offline: bool = False
    cost_micros: int = 0


@dataclass(frozen=True, slots=True)
class Vectors:
    vectors: Sequence[Sequence[float]]
    cost_micros: int = 0


class Ports(Protocol):
    async def embed(self, texts: tuple[str, ...]) -> Vectors: ...

    async def judge(self, *, criteria: str, input: str, output: str) -> Judgement: ...


def parse_judgement(text: str) -> Judgement:
    """The judge's reply → a Judgement; anything but {"pass": bool, …} is a failed one."""
    fenced = _FENCE.match(text)
    try:
        data = json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        return Judgement(False, 0.0, f"the judge did not answer JSON: {text[:120]!r}", valid=False)
    if not isinstance(data, dict) or not isinstance(data.get("pass"), bool):
        return Judgement(
            False, 0.0, f"the judge's JSON has no boolean `pass`: {text[:120]!r}", valid=False
        )
    score = data.get("score", 1.0 if data["pass"] else 0.0)
    if not isinstance(score, int | float) or isinstance(score, bool) or not 0 <= score <= 1:
        return Judgement(
            False, 0.0, f"the judge's score is not a number from 0 to 1: {score!r}", valid=False
        )
    return Judgement(data["pass"], float(score), str(data.get("reason", "")))


def _field(output: str, path: str | None) -> tuple[Any, str | None]:
    """The value a check looks at: the output, or a field of its JSON; (None, why) if absent."""
    if not path:
        return output, None
    try:
        value: Any = json.loads(output)
    except ValueError:
        return None, f"the output is not JSON, so it has no field {path!r}"
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None, f"the output has no field {path!r}"
    return value, None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _binary(kind: str, passed: bool, detail: str) -> CheckResult:
    return CheckResult(kind, passed, 1.0 if passed else 0.0, "" if passed else detail)


def _values(check: dict[str, Any]) -> list[str]:
    return list(check.get("values") or [check["value"]])


def score_contains(value: Any, check: dict[str, Any]) -> CheckResult:
    text, fold = _text(value), not check.get("case_sensitive", False)
    missing = [
        v
        for v in _values(check)
        if (v.casefold() not in text.casefold() if fold else v not in text)
    ]
    return _binary("contains", not missing, f"missing {missing}")


def score_not_contains(value: Any, check: dict[str, Any]) -> CheckResult:
    text, fold = _text(value), not check.get("case_sensitive", False)
    found = [v for v in _values(check) if (v.casefold() in text.casefold() if fold else v in text)]
    return _binary("not_contains", not found, f"contains {found}")


def score_exact(value: Any, check: dict[str, Any]) -> CheckResult:
    expected = check["value"]
    same = (
        value.strip() == expected.strip()
        if isinstance(value, str) and isinstance(expected, str)
        else value == expected
    )
    return _binary("exact", same, f"expected {expected!r}, got {value!r}")


def score_regex(value: Any, check: dict[str, Any]) -> CheckResult:
    flags = re.IGNORECASE if check.get("ignore_case") else 0
    found = re.search(check["pattern"], _text(value), flags) is not None
    return _binary("regex", found, f"no match for /{check['pattern']}/ in {_text(value)[:80]!r}")


def score_json_schema(
    output: str, check: dict[str, Any], schema: dict[str, Any] | None
) -> CheckResult:
    schema = check.get("schema") or schema
    try:
        value = json.loads(output)
    except ValueError:
        return _binary("json_schema", False, f"the output is not JSON: {output[:80]!r}")
    if schema is None:
        return _binary("json_schema", True, "")
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(value)
    )
    return _binary("json_schema", error is None, error.message if error else "")


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


async def score_similarity(
    value: Any, check: dict[str, Any], reference: str, ports: Ports
) -> CheckResult:
    found = await ports.embed((_text(value), reference))
    similarity = cosine(found.vectors[0], found.vectors[1])
    passed = similarity >= check["min"]
    detail = f"cosine {similarity:.3f} (min {check['min']})"
    return CheckResult(
        "similarity", passed, max(0.0, similarity), detail, cost_micros=found.cost_micros
    )


async def score_judge(
    value: Any, check: dict[str, Any], example: EvalExample, ports: Ports
) -> CheckResult:
    verdict = await ports.judge(
        criteria=check["criteria"], input=_judge_input(example), output=_text(value)
    )
    low = check.get("min")
    passed = verdict.passed and (low is None or verdict.score >= low)
    label = "offline judge (advisory): " if verdict.offline else ""
    return CheckResult(
        "judge",
        passed,
        verdict.score if verdict.valid else 0.0,
        f"{label}{verdict.reason}",
        counted=not verdict.offline,
        cost_micros=verdict.cost_micros,
    )


def _judge_input(example: EvalExample) -> str:
    if example.input is not None:
        return example.input
    return "\n".join(f"{k}: {v}" for k, v in example.vars.items())


async def score_example(
    example: EvalExample,
    output: str,
    *,
    offline: bool,
    ports: Ports,
    response_schema: dict[str, Any] | None = None,
) -> list[CheckResult]:
    """Run every check of `example` on `output`."""
    results = []
    for check in example.checks:
        result = await _one(example, output, check, ports, response_schema)
        when = check.get("when")
        if when is not None and (when == "offline") != offline:
            result = CheckResult(
                result.type,
                result.passed,
                result.score,
                f"{result.detail} (counted for {when} models only)".strip(),
                counted=False,
                cost_micros=result.cost_micros,
            )
        if not result.passed and check.get("why"):
            result = CheckResult(
                result.type,
                False,
                result.score,
                f"{check['why']}: {result.detail}",
                counted=result.counted,
                cost_micros=result.cost_micros,
            )
        results.append(result)
    return results


async def _one(
    example: EvalExample,
    output: str,
    check: dict[str, Any],
    ports: Ports,
    response_schema: dict[str, Any] | None,
) -> CheckResult:
    kind = check["type"]
    if kind == "json_schema":
        return score_json_schema(output, check, response_schema)
    value, missing = _field(output, check.get("path"))
    if missing:
        return _binary(kind, False, missing)
    simple: dict[str, Callable[[Any, dict[str, Any]], CheckResult]] = {
        "contains": score_contains,
        "not_contains": score_not_contains,
        "exact": score_exact,
        "regex": score_regex,
    }
    if kind in simple:
        return simple[kind](value, check)
    if kind == "similarity":
        return await score_similarity(
            value, check, check.get("reference") or example.reference or "", ports
        )
    return await score_judge(value, check, example, ports)


def summarise(results: Sequence[CheckResult]) -> tuple[float, bool]:
    """An example's score (mean of counted checks) and whether every counted check passed."""
    counted = [r for r in results if r.counted]
    if not counted:
        return 1.0, True
    return sum(r.score for r in counted) / len(counted), all(r.passed for r in counted)
