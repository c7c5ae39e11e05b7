"""Eval sets: the committed ones are usable; malformed lines are refused with their number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.evals.dataset import EvalDataError, load_eval_set
from apps.llm.prompts import DEFAULT_ROOT, PromptLibrary

GOOD = {"id": "x", "vars": {}, "checks": [{"type": "contains", "value": "a"}]}


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "eval.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("name", ["chat.system", "conversation.title", "evals.judge"])
def test_committed_eval_sets_have_twenty_examples_that_render(name: str):
    library = PromptLibrary(DEFAULT_ROOT)
    examples = load_eval_set(DEFAULT_ROOT / name / "eval.jsonl")
    assert len(examples) >= 20
    for example in examples:
        library.render(name, example.vars)


def test_the_judge_set_is_human_labelled_both_ways():
    labels = [e.label["pass"] for e in load_eval_set(DEFAULT_ROOT / "evals.judge" / "eval.jsonl")]
    assert True in labels
    assert False in labels


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 3: not valid JSON"),
        ("[1, 2]", "line 3: an example must be a JSON object"),
        (
            json.dumps({**GOOD, "id": "y", "checks": []}),
            "line 3: `checks` must be a non-empty list",
        ),
        (
            json.dumps({**GOOD, "id": "y", "checks": [{"type": "fuzzy"}]}),
            "line 3: check 1: unknown type 'fuzzy'",
        ),
        (
            json.dumps({**GOOD, "id": "y", "checks": [{"type": "regex", "pattern": "("}]}),
            "line 3: check 1 \\(regex\\): bad pattern",
        ),
        (
            json.dumps({**GOOD, "id": "y", "checks": [{"type": "similarity", "min": 0.5}]}),
            "needs a `reference`",
        ),
        (
            json.dumps(
                {
                    **GOOD,
                    "id": "y",
                    "checks": [{"type": "contains", "value": "a", "when": "sometimes"}],
                }
            ),
            "`when` is offline or online",
        ),
        (json.dumps({**GOOD, "id": "y", "extra": 1}), "line 3: unknown key 'extra'"),
        (json.dumps(GOOD), "line 3: the id 'x' is used twice"),
    ],
)
def test_malformed_lines_name_their_line(tmp_path: Path, line: str, message: str):
    path = write(tmp_path, json.dumps(GOOD), "", line)
    with pytest.raises(EvalDataError, match=message):
        load_eval_set(path)


def test_a_missing_eval_set_is_an_error(tmp_path: Path):
    with pytest.raises(EvalDataError, match="every prompt needs an eval set"):
        load_eval_set(tmp_path / "eval.jsonl")
