"""Retrieval: `search_chunks`, the one entry point — BM25 (apps/rag/lexical.py), dense
(pgvector HNSW, cosine) or both fused.

Every query runs in the workspace's own schema, entered here from the `workspace` argument:
chunks, postings, corpus statistics and HNSW indexes are per schema, so a search cannot see
another workspace's rows (no cross-schema query, no post-filter). The query's embedding goes
through the gateway's `embed` alias, metered and budgeted like any call, pinned to the model
of the schema's vectors while the alias may answer with another (apps/rag/embedder.py).

Fusion: each leg returns its CANDIDATES best chunks; RRF sums 1 / (RRF_K + rank), convex sums
min-max-normalised scores weighted by DENSE_WEIGHT. Defaults chosen on SciFact's train qrels
(benchmarks/rag/scifact.py; docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from django.db import connection, transaction
from django_tenants.utils import schema_context

from apps.common.errors import ApplicationError
from apps.llm.services import Actor, GatewayError
from apps.workspaces.models import User, Workspace

from .embedder import embed_texts, index_route
from .lexical import Scored, bm25_search
from .models import Chunk, Document

log = structlog.get_logger(__name__)

Mode = Literal["hybrid", "lexical", "dense"]
Fusion = Literal["rrf", "convex"]
MODES: tuple[Mode, ...] = ("hybrid", "lexical", "dense")
SEARCH_FEATURE = "rag.search"
MAX_QUERY_CHARS = 2000  # longer queries are cut: the embedder reads 256 word pieces anyway
MAX_K = 50
CANDIDATES = 100  # per leg, before fusion
# Chosen on SciFact's train qrels (docs/benchmarks.md): convex at w 0.5 scored 0.731 nDCG@10
# against RRF's best 0.724 (k 10; the usual 60 gave 0.716).
RRF_K = 10
FUSION: Fusion = "convex"
DENSE_WEIGHT = 0.5  # convex: weight of the dense leg, 1 - this for BM25
# HNSW's candidate list: at least the rows asked for, or the index returns fewer.
EF_SEARCH_MIN = 100
# Dimensions with a partial HNSW index (migration 0002); any other size is an exact scan.
INDEXED_DIMS = frozenset({384, 1536})


@dataclass(frozen=True, slots=True)
class Hit:
    chunk_id: int
    document_id: int
    title: str
    ordinal: int
    page: int | None
    heading_path: list[str]
    text: str
    score: float  # the fused score (or the one leg's, in a single-leg mode)
    lexical_score: float | None  # BM25; None when the lexical leg did not return the chunk
    dense_score: float | None  # cosine similarity; None when the dense leg did not return it


def search_chunks(
    *,
    workspace: Workspace,
    query: str,
    k: int = 8,
    collection_ids: Sequence[int] | None = None,
    document_ids: Sequence[int] | None = None,
    mode: Mode = "hybrid",
    fusion: Fusion | None = None,
    actor: Actor | None = None,
    user: User | None = None,
) -> list[Hit]:
    """The `k` chunks of `workspace` that best answer `query`, best first. Filters on
    collections and documents apply inside each leg (before its limit)."""
    query = _clean_query(query)
    if mode not in MODES:
        raise ApplicationError(f"Unknown search mode {mode!r}.", field="mode")
    if k < 1:
        raise ApplicationError("Ask for at least one result.", field="k")
    k = min(k, MAX_K)
    fusion = fusion or FUSION
    depth = CANDIDATES if mode == "hybrid" else k
    with schema_context(workspace.schema_name):
        lexical: list[Scored] = []
        dense: list[Scored] = []
        if mode != "dense":
            lexical = bm25_search(
                query, limit=depth, collection_ids=collection_ids, document_ids=document_ids
            )
        if mode != "lexical":
            try:
                model, vector = embed_query(workspace, query, actor=actor, user=user)
            except GatewayError as exc:
                if mode == "dense":
                    raise
                # hybrid degrades to BM25 rather than failing the whole search
                log.warning("rag.search_dense_skipped", error=exc.code)
            else:
                dense = dense_search(
                    vector,
                    model=model,
                    limit=depth,
                    collection_ids=collection_ids,
                    document_ids=document_ids,
                )
        if mode == "lexical":
            ranked = [(s.chunk_id, s.score) for s in lexical]
        elif mode == "dense":
            ranked = [(s.chunk_id, s.score) for s in dense]
        elif fusion == "convex":
            ranked = fuse_convex(lexical, dense, dense_weight=DENSE_WEIGHT)
        else:
            ranked = fuse_rrf([lexical, dense], k=RRF_K)
        return _hits(ranked[:k], lexical, dense)


def _clean_query(query: str) -> str:
    query = " ".join((query or "").split())
    if not query:
        raise ApplicationError("Enter something to search for.", field="query")
    return query[:MAX_QUERY_CHARS]


def embed_query(
    workspace: Workspace, query: str, *, actor: Actor | None = None, user: User | None = None
) -> tuple[str, list[float]]:
    """The query's vector through the gateway's `embed` alias, pinned to the model of the
    schema's searched vectors (apps/rag/embedder.py), and that model. Call it in the
    workspace's schema."""
    reply = embed_texts(
        workspace=workspace,
        inputs=(query,),
        feature=SEARCH_FEATURE,
        route=index_route(),
        actor=actor,
        user=user,
    )
    return reply.model, [float(x) for x in reply.vectors[0]]


def dense_search(
    vector: Sequence[float],
    *,
    model: str,
    limit: int,
    collection_ids: Sequence[int] | None = None,
    document_ids: Sequence[int] | None = None,
) -> list[Scored]:
    """The `limit` nearest chunks by cosine among those embedded with `model`, best first;
    the score is the cosine similarity. Uses the partial HNSW index of the vector's size."""
    dims = len(vector)
    # An int from len(): safe to inline, and the cast must be literal to match the index.
    sql = f"""
        SELECT c.id, 1 - (c.vector::vector({dims}) <=> %(v)s::vector({dims})) AS score
        FROM rag_chunk c JOIN rag_document d ON d.id = c.document_id
        WHERE c.dims = {dims} AND c.embedding_model = %(model)s AND d.status = 'ready'
          AND (%(collections)s::bigint[] IS NULL OR d.collection_id = ANY(%(collections)s::bigint[]))
          AND (%(documents)s::bigint[] IS NULL OR c.document_id = ANY(%(documents)s::bigint[]))
        ORDER BY c.vector::vector({dims}) <=> %(v)s::vector({dims})
        LIMIT %(limit)s
    """  # noqa: S608
    params: dict[str, Any] = {
        "v": "[" + ",".join(repr(float(x)) for x in vector) + "]",
        "model": model,
        "limit": int(limit),
        "collections": list(collection_ids) if collection_ids is not None else None,
        "documents": list(document_ids) if document_ids is not None else None,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        if dims in INDEXED_DIMS:
            # SET LOCAL: for this transaction only, never leaked to the pooled connection.
            # Iterative scans keep looking when filters (model, collection, document) reject
            # the first neighbours, instead of returning fewer than `limit`.
            cursor.execute(
                "SELECT set_config('hnsw.ef_search', %s, true)", [str(max(EF_SEARCH_MIN, limit))]
            )
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    # relaxed_order may return neighbours slightly out of order
    return sorted(
        (Scored(int(pk), float(s)) for pk, s in rows), key=lambda s: (-s.score, s.chunk_id)
    )


def fuse_rrf(legs: Sequence[Sequence[Scored]], *, k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: Σ over legs of 1 / (k + rank), ranks from 1; best first."""
    fused: dict[int, float] = {}
    for leg in legs:
        for rank, hit in enumerate(leg, start=1):
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def fuse_convex(
    lexical: Sequence[Scored], dense: Sequence[Scored], *, dense_weight: float = DENSE_WEIGHT
) -> list[tuple[int, float]]:
    """(1 - w) · BM25 + w · cosine, each min-max normalised over its leg's candidates (a
    chunk a leg did not return scores 0 there); best first. BM25 is unbounded and its scale
    depends on the query, hence the normalisation."""
    fused: dict[int, float] = {}
    for leg, weight in ((lexical, 1.0 - dense_weight), (dense, dense_weight)):
        for chunk_id, value in _min_max(leg).items():
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight * value
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def _min_max(leg: Sequence[Scored]) -> dict[int, float]:
    if not leg:
        return {}
    high = max(s.score for s in leg)
    low = min(s.score for s in leg)
    span = high - low
    return {s.chunk_id: (s.score - low) / span if span > 0 else 1.0 for s in leg}


def _hits(
    ranked: Sequence[tuple[int, float]], lexical: Sequence[Scored], dense: Sequence[Scored]
) -> list[Hit]:
    ids = [chunk_id for chunk_id, _ in ranked]
    chunks = Chunk.objects.filter(pk__in=ids).only(
        "document_id", "ordinal", "page", "heading_path", "text"
    )
    by_id = {c.pk: c for c in chunks}
    titles = dict(
        Document.objects.filter(pk__in={c.document_id for c in by_id.values()}).values_list(
            "pk", "title"
        )
    )
    lexical_scores = {s.chunk_id: s.score for s in lexical}
    dense_scores = {s.chunk_id: s.score for s in dense}
    hits = []
    for chunk_id, score in ranked:
        chunk = by_id.get(chunk_id)
        if chunk is None:
            continue  # deleted between the legs and now
        hits.append(
            Hit(
                chunk_id=chunk_id,
                document_id=chunk.document_id,
                title=titles.get(chunk.document_id, ""),
                ordinal=chunk.ordinal,
                page=chunk.page,
                heading_path=list(chunk.heading_path),
                text=chunk.text,
                score=score,
                lexical_score=lexical_scores.get(chunk_id),
                dense_score=dense_scores.get(chunk_id),
            )
        )
    return hits
