"""Retrieval eval metrics (documents ranked from chunks, nDCG, recall, reciprocal rank) and the
JSONL question files, without a database."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from apps.rag.evaluation.metrics import (
    documents,
    mean_ndcg,
    ndcg_at_10,
    recall_at,
    reciprocal_rank,
)
from apps.rag.evaluation.qrels import EvalDataError, qrels_load, qrels_parse


def test_a_document_ranks_where_its_best_chunk_does() -> None:
    corpus = {1: "a", 2: "b", 3: "a", 4: "c", 5: "b"}
    assert documents([3, 2, 1, 5, 4], corpus) == ["a", "b", "c"]
    assert documents([3, 2, 1, 5, 4], corpus, depth=2) == ["a", "b"]
    assert documents([], corpus, depth=None) == []


def test_binary_ndcg_is_dcg_over_the_ideal_dcg() -> None:
    # relevant at ranks 2 and 3 of 3; ideal: ranks 1 and 2
    found = ["x", "a", "b"]
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_10(found, {"a", "b"}) == pytest.approx(expected)
    assert ndcg_at_10(["a", "b"], {"a", "b"}) == 1.0
    assert ndcg_at_10(["x", "y"], {"a"}) == 0.0


def test_graded_ndcg_rewards_the_better_document_first() -> None:
    grades = {"on-call": 2, "incidents": 1}
    assert ndcg_at_10(["on-call", "incidents"], grades) == 1.0
    swapped = ndcg_at_10(["incidents", "on-call"], grades)
    ideal = 2 + 1 / math.log2(3)
    assert swapped == pytest.approx((1 + 2 / math.log2(3)) / ideal)
    # a set is binary relevance: the same as grade 1 each
    assert ndcg_at_10(["x", "a"], {"a"}) == ndcg_at_10(["x", "a"], {"a": 1})


def test_ndcg_reads_only_the_first_ten() -> None:
    found = [f"d{i}" for i in range(10)] + ["a"]
    assert ndcg_at_10(found, {"a"}) == 0.0


def test_recall_at_k_and_reciprocal_rank() -> None:
    found = ["x", "a", "y", "b"]
    assert recall_at(found, {"a", "b"}, 2) == 0.5
    assert recall_at(found, {"a", "b"}, 4) == 1.0
    assert recall_at(found, {"z"}, 4) == 0.0
    assert reciprocal_rank(found, {"a", "b"}) == 0.5
    assert reciprocal_rank(found, {"z"}) == 0.0


def test_mean_ndcg_counts_a_query_without_a_run_as_zero() -> None:
    corpus = {1: "a", 2: "b"}
    qrels = {"q1": {"a"}, "q2": {"b"}}
    assert mean_ndcg({"q1": [1, 2]}, qrels, corpus) == 0.5


def test_a_question_file_names_documents_as_a_list_or_with_grades() -> None:
    lines = [
        '{"query": "How many days of leave?", "relevant": ["holidays.md"]}',
        "",
        '{"id": "sev1", "query": " Who acks? ", "relevant": {"on-call.md": 2, "incidents.md": 1}}',
    ]
    first, second = qrels_parse(lines)
    assert (first.line, first.id, first.query, first.relevant) == (
        1,
        "1",
        "How many days of leave?",
        {"holidays.md": 1},
    )
    assert (second.line, second.id, second.query) == (3, "sev1", "Who acks?")
    assert second.relevant == {"on-call.md": 2, "incidents.md": 1}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"query": "x" "relevant": ["a"]}', "line 2: not valid JSON"),
        ('["x", ["a"]]', "line 2: expected an object"),
        ('{"relevant": ["a"]}', "line 2: “query” must be a non-empty string"),
        ('{"query": "  ", "relevant": ["a"]}', "line 2: “query” must be a non-empty string"),
        ('{"query": "x"}', "line 2: “relevant” must be a list"),
        ('{"query": "x", "relevant": []}', "line 2: “relevant” names no document"),
        ('{"query": "x", "relevant": [""]}', "line 2: a relevant document name"),
        ('{"query": "x", "relevant": {"a": 0}}', "line 2: the grade of “a”"),
        ('{"query": "x", "relevant": {"a": 1.5}}', "line 2: the grade of “a”"),
        ('{"query": "x", "relevant": ["a"], "relevnt": 1}', "line 2: unknown key(s) relevnt"),
        ('{"query": "x", "relevant": ["a"], "id": [1]}', "line 2: “id” must be"),
    ],
)
def test_a_bad_line_is_refused_with_its_line_number(line: str, message: str) -> None:
    lines = ['{"query": "fine", "relevant": ["a"]}', line]
    with pytest.raises(EvalDataError) as caught:
        qrels_parse(lines, source="q.jsonl")
    assert caught.value.message.startswith(f"q.jsonl, {message}"), caught.value.message


def test_a_missing_or_empty_question_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EvalDataError, match="No such question file"):
        qrels_load(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(EvalDataError, match="no questions"):
        qrels_load(empty)
