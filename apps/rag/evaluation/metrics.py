"""Ranking metrics over documents from ranked chunks: nDCG@10, recall@k, reciprocal rank.

Plain Python, no Django: benchmarks/rag imports it before Django is set up. Relevance is a set
of documents (binary, as BEIR's SciFact judges) or a mapping document → grade ≥ 1; the gain is
the grade itself (trec_eval's nDCG), so a binary judgement scores the same either way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet

Relevant = AbstractSet[str] | Mapping[str, int]  # a set is binary relevance: grade 1 each
Qrels = Mapping[str, Relevant]  # query id → its relevant documents
Ranked = Sequence[int]  # chunk ids, best first


def grades(relevant: Relevant) -> Mapping[str, int]:
    """Document → grade; a set's documents are grade 1."""
    if isinstance(relevant, Mapping):
        return relevant
    return dict.fromkeys(relevant, 1)


def documents(chunks: Ranked, corpus_id: Mapping[int, str], depth: int | None = 10) -> list[str]:
    """The first `depth` distinct documents of a chunk ranking (all of them with None): a
    document ranks where its best chunk does (qrels judge documents, we retrieve chunks)."""
    seen: dict[str, None] = {}
    for chunk in chunks:
        seen.setdefault(corpus_id[chunk])
        if depth is not None and len(seen) == depth:
            break
    return list(seen)


def ndcg(found: Sequence[str], relevant: Relevant, *, depth: int = 10) -> float:
    """nDCG@depth of a ranking of distinct documents: 0 when nothing is relevant."""
    gain = grades(relevant)
    dcg = sum(gain.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(found[:depth]))
    best = sorted(gain.values(), reverse=True)[:depth]
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(best))
    return dcg / ideal if ideal else 0.0


def ndcg_at_10(found: Sequence[str], relevant: Relevant) -> float:
    return ndcg(found, relevant, depth=10)


def recall_at(found: Sequence[str], relevant: Relevant, k: int) -> float:
    """The share of the relevant documents among the first `k` found."""
    if not relevant:
        return 0.0
    return len(set(found[:k]) & set(relevant)) / len(relevant)


def reciprocal_rank(found: Sequence[str], relevant: Relevant) -> float:
    """1 / the rank of the first relevant document found (ranks from 1), 0 if none is."""
    return next((1 / rank for rank, doc in enumerate(found, start=1) if doc in relevant), 0.0)


def mean_ndcg(runs: Mapping[str, Ranked], qrels: Qrels, corpus_id: Mapping[int, str]) -> float:
    """Mean nDCG@10 over every judged query (a query with no run scores 0)."""
    total = sum(ndcg_at_10(documents(runs.get(q, ()), corpus_id), rel) for q, rel in qrels.items())
    return total / len(qrels)
