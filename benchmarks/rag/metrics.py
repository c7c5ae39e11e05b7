"""The train-split grid search. The ranking metrics (nDCG@10 over documents from ranked
chunks) are the app's own, apps/rag/evaluation/metrics.py, shared with `manage.py rag eval`."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def best(
    grid: Iterable[float], score: Callable[[float], float]
) -> tuple[float, float, dict[float, float]]:
    """The grid value with the highest score, its score, and every score (for the table)."""
    scores = {value: score(value) for value in grid}
    top = max(scores, key=lambda v: scores[v])
    return top, scores[top], scores
