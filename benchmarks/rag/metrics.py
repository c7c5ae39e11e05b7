"""nDCG@10 over documents from ranked chunks, and the train-split grid searches."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

Qrels = Mapping[str, set[str]]  # query id → relevant corpus ids (SciFact's scores are all 1)
Ranked = Sequence[int]  # chunk ids, best first


def documents(chunks: Ranked, corpus_id: Mapping[int, str], depth: int = 10) -> list[str]:
    """The first `depth` distinct documents of a chunk ranking: a document ranks where its
    best chunk does (BEIR judges documents, we retrieve chunks)."""
    seen: list[str] = []
    for chunk in chunks:
        doc = corpus_id[chunk]
        if doc not in seen:
            seen.append(doc)
            if len(seen) == depth:
                break
    return seen


def ndcg_at_10(found: Sequence[str], relevant: set[str]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, doc in enumerate(found[:10]) if doc in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
    return dcg / ideal if ideal else 0.0


def mean_ndcg(runs: Mapping[str, Ranked], qrels: Qrels, corpus_id: Mapping[int, str]) -> float:
    """Mean over every judged query (a query with no run scores 0)."""
    total = sum(ndcg_at_10(documents(runs.get(q, ()), corpus_id), rel) for q, rel in qrels.items())
    return total / len(qrels)


def best(
    grid: Iterable[float], score: Callable[[float], float]
) -> tuple[float, float, dict[float, float]]:
    """The grid value with the highest score, its score, and every score (for the table)."""
    scores = {value: score(value) for value in grid}
    top = max(scores, key=lambda v: scores[v])
    return top, scores[top], scores
