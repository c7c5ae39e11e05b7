"""Each scorer on hand-made outputs, passing and failing; the judge's bad replies."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from apps.evals.dataset import EvalExample
from apps.evals.scorers import (
    Judgement,
    Vectors,
    parse_judgement,
    score_example,
    summarise,
)


class StubPorts:
    """Embeddings from a lookup table; the judge answers with a fixed text."""

    def __init__(
        self,
        vectors: dict[str, list[float]] | None = None,
        judge_text: str = "",
        offline: bool = False,
    ):
        self.vectors = vectors or {}
        self.judge_text = judge_text
        self.offline = offline
        self.judged: list[dict[str, str]] = []

    async def embed(self, texts: tuple[str, ...]) -> Vectors:
        return Vectors([self.vectors[t] for t in texts], cost_micros=7)

    async def judge(self, *, criteria: str, input: str, output: str) -> Judgement:
        self.judged.append({"criteria": criteria, "input": input, "output": output})
        verdict = parse_judgement(self.judge_text)
        return Judgement(
            verdict.passed,
            verdict.score,
            verdict.reason,
            verdict.valid,
            offline=self.offline,
            cost_micros=11,
        )


def run(
    output: str,
    *checks: dict[str, Any],
    offline: bool = False,
    ports: StubPorts | None = None,
    reference: str | None = None,
    schema: dict[str, Any] | None = None,
):
    example = EvalExample(id="e", vars={}, checks=checks, input="the question", reference=reference)
    return asyncio.run(
        score_example(
            example, output, offline=offline, ports=ports or StubPorts(), response_schema=schema
        )
    )


@pytest.mark.parametrize(
    ("output", "check", "passed"),
    [
        ("Reset your Password here", {"type": "contains", "value": "password"}, True),
        ("Reset it here", {"type": "contains", "values": ["reset", "password"]}, False),
        ("Password", {"type": "contains", "value": "password", "case_sensitive": True}, False),
        ("A clean answer", {"type": "not_contains", "values": ["{{", "As an AI"]}, True),
        ("As an AI model, {{ x }}", {"type": "not_contains", "values": ["{{"]}, False),
        ("  Paris \n", {"type": "exact", "value": "Paris"}, True),
        ("Paris, France", {"type": "exact", "value": "Paris"}, False),
        ('{"pass": true}', {"type": "exact", "path": "pass", "value": True}, True),
        ('{"pass": false}', {"type": "exact", "path": "pass", "value": True}, False),
        (
            '{"title": "Mobile password reset"}',
            {"type": "regex", "path": "title", "pattern": r"^\S+(?:\s+\S+){0,5}$"},
            True,
        ),
        (
            '{"title": "one two three four five six seven"}',
            {"type": "regex", "path": "title", "pattern": r"^\S+(?:\s+\S+){0,5}$"},
            False,
        ),
        ("HELLO", {"type": "regex", "pattern": "hello", "ignore_case": True}, True),
        ("plain text", {"type": "regex", "path": "title", "pattern": "."}, False),
    ],
)
def test_string_scorers(output: str, check: dict[str, Any], passed: bool):
    [result] = run(output, check)
    assert result.passed is passed
    assert result.score == (1.0 if passed else 0.0)
    assert (result.detail == "") is passed


def test_json_schema_scorer_uses_the_prompt_schema_or_its_own():
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string", "maxLength": 10}},
        "required": ["title"],
    }
    assert run('{"title": "Short"}', {"type": "json_schema"}, schema=schema)[0].passed
    [too_long] = run('{"title": "Far too long a title"}', {"type": "json_schema"}, schema=schema)
    assert not too_long.passed
    assert "too long" in too_long.detail
    [not_json] = run("Title: Short", {"type": "json_schema"}, schema=schema)
    assert not not_json.passed
    assert "not JSON" in not_json.detail
    assert not run("[1]", {"type": "json_schema", "schema": {"type": "object"}})[0].passed


def test_similarity_scorer_compares_with_the_reference():
    ports = StubPorts({"close": [1.0, 0.0], "ref": [0.8, 0.6], "far": [0.0, 1.0]})
    [near] = run("close", {"type": "similarity", "min": 0.7}, ports=ports, reference="ref")
    assert near.passed
    assert near.score == pytest.approx(0.8)
    assert near.cost_micros == 7
    [far] = run("far", {"type": "similarity", "min": 0.7}, ports=ports, reference="ref")
    assert not far.passed
    assert far.score == pytest.approx(0.6)
    assert "cosine 0.600" in far.detail
    opposite = StubPorts({"x": [1.0, 0.0], "ref": [-1.0, 0.0]})
    assert (
        run("x", {"type": "similarity", "min": 0.1}, ports=opposite, reference="ref")[0].score
        == 0.0
    )


def test_judge_scorer_passes_and_fails_on_the_verdict():
    good = StubPorts(judge_text=json.dumps({"pass": True, "score": 0.9, "reason": "fine"}))
    [result] = run("an answer", {"type": "judge", "criteria": "is fine"}, ports=good)
    assert result.passed
    assert result.score == 0.9
    assert result.counted
    assert good.judged == [{"criteria": "is fine", "input": "the question", "output": "an answer"}]
    low = StubPorts(judge_text=json.dumps({"pass": True, "score": 0.4, "reason": "meh"}))
    assert not run("x", {"type": "judge", "criteria": "c", "min": 0.5}, ports=low)[0].passed


@pytest.mark.parametrize(
    "reply",
    [
        "I think it passes.",
        '{"verdict": "pass"}',
        '{"pass": "yes"}',
        '{"pass": true, "score": 7}',
        "",
    ],
)
def test_a_judge_that_does_not_answer_json_is_a_failed_judgement(reply: str):
    [result] = run("x", {"type": "judge", "criteria": "c"}, ports=StubPorts(judge_text=reply))
    assert not result.passed
    assert result.score == 0.0
    assert result.counted
    assert "judge" in result.detail


def test_fenced_json_from_the_judge_is_accepted():
    verdict = parse_judgement('```json\n{"pass": false, "score": 0.1, "reason": "no"}\n```')
    assert verdict.valid
    assert not verdict.passed


def test_an_offline_judge_is_shown_but_not_counted():
    ports = StubPorts(
        judge_text=json.dumps({"pass": False, "score": 0.0, "reason": "?"}), offline=True
    )
    results = run(
        "x", {"type": "contains", "value": "x"}, {"type": "judge", "criteria": "c"}, ports=ports
    )
    assert [r.counted for r in results] == [True, False]
    assert "advisory" in results[1].detail
    assert summarise(results) == (1.0, True)


def test_when_limits_a_check_to_offline_or_online_models():
    checks = (
        {"type": "contains", "value": "Acme", "when": "offline"},
        {"type": "contains", "value": "x", "when": "online"},
    )
    offline = run("Acme says hi", *checks, offline=True)
    assert [r.counted for r in offline] == [True, False]
    assert summarise(offline) == (1.0, True)
    online = run("Acme says hi", *checks, offline=False)
    assert [r.counted for r in online] == [False, True]
    assert summarise(online) == (0.0, False)


def test_why_explains_a_failure():
    [result] = run(
        "nope", {"type": "contains", "value": "Acme", "why": "the persona names the workspace"}
    )
    assert result.detail.startswith("the persona names the workspace: missing")
