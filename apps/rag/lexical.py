"""The lexical leg: Okapi BM25 in SQL over the workspace schema's own postings (rag_term).

Why not `ts_rank`: it is no BM25 (no idf, no length saturation) and scored 0.569 nDCG@10 on
SciFact against BM25's 0.680. Why not a Python index: postings live beside the chunks, in the
same schema and the same transaction, so a search is tenant-scoped and never sees a half
re-indexed document.

Terms are PostgreSQL's own `to_tsvector(<config>, embed_text)` lexemes (the Snowball stemmer
and the stop words of the text search configuration), so indexing and querying tokenise
identically without a Python dependency. Per posting: tf = the number of positions of the
lexeme (tsvector keeps at most 256 per lexeme, far above a chunk's ~256 tokens) and dl = the
chunk's length in lexeme occurrences (stop words excluded, as Lucene counts them).

Scoring (Lucene's BM25 with Robertson's idf, which stays positive):
    idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))
    score(c) = Σ_t idf(t) · tf · (k1 + 1) / (tf + k1 · (1 - b + b · dl / avgdl))
N and the total length come from rag_lexicalstats (kept by a trigger, migration 0003); df is
counted on the term index at query time, in the same scan that reads the postings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection

# The text search configuration: English stemming and stop words. One per deployment for now
# (a per-workspace language would be a setting); indexing and querying must use the same.
TS_CONFIG = "english"
# Chosen on SciFact's train qrels over k1 {0.9, 1.2} × b {0.4, 0.6, 0.75} (train nDCG@10
# 0.691–0.697, so not sensitive; docs/benchmarks.md).
K1 = 1.2
B = 0.6
# A query's distinct terms beyond this are dropped: each term is one more index scan.
MAX_QUERY_TERMS = 64

# All postings of a document's chunks in one INSERT (the caller's transaction): one statement
# per document keeps the stats trigger's per-statement arithmetic exact.
_WRITE = """
WITH lexemes AS (
    SELECT c.id AS chunk_id, x.lexeme AS term, cardinality(x.positions) AS tf
    FROM rag_chunk c CROSS JOIN LATERAL unnest(to_tsvector(%(config)s::regconfig, c.embed_text)) x
    WHERE c.document_id = %(document)s
)
INSERT INTO rag_term (term, chunk_id, tf, dl)
SELECT term, chunk_id, tf, sum(tf) OVER (PARTITION BY chunk_id) FROM lexemes
"""

_TERMS = """
SELECT DISTINCT unnest(tsvector_to_array(to_tsvector(%(config)s::regconfig, %(query)s)))
"""

# One pass over the postings of the query's terms: df by a window over the term, then the
# BM25 sum per chunk. Filters apply before the LIMIT (exact, no post-filter loss); df, N and
# avgdl stay those of the whole schema, so a chunk's score does not depend on the filter.
_SEARCH = """
WITH stats AS (
    SELECT chunks::float8 AS n, tokens::float8 / greatest(chunks, 1) AS avgdl
    FROM rag_lexicalstats WHERE id = 1
),
postings AS (
    SELECT t.chunk_id, t.tf, t.dl, count(*) OVER (PARTITION BY t.term) AS df
    FROM rag_term t WHERE t.term = ANY(%(terms)s)
),
scored AS (
    SELECT p.chunk_id, sum(
        ln(1 + (s.n - p.df + 0.5) / (p.df + 0.5))
        * p.tf * (%(k1)s + 1) / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.dl / s.avgdl))
    ) AS score
    FROM postings p CROSS JOIN stats s
    GROUP BY p.chunk_id
)
SELECT scored.chunk_id, scored.score
FROM scored
JOIN rag_chunk c ON c.id = scored.chunk_id
JOIN rag_document d ON d.id = c.document_id
WHERE d.status = 'ready'
  AND (%(collections)s::bigint[] IS NULL OR d.collection_id = ANY(%(collections)s::bigint[]))
  AND (%(documents)s::bigint[] IS NULL OR c.document_id = ANY(%(documents)s::bigint[]))
ORDER BY scored.score DESC, scored.chunk_id
LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class Scored:
    chunk_id: int
    score: float


def postings_write(document_id: int) -> int:
    """Write the postings of every chunk of the document; call it in the transaction that
    wrote the chunks. Old postings went with the old chunks (ON DELETE CASCADE)."""
    with connection.cursor() as cursor:
        cursor.execute(_WRITE, {"config": TS_CONFIG, "document": document_id})
        return int(cursor.rowcount)


def query_terms(query: str) -> list[str]:
    """The query's distinct lexemes, as indexed (stop words dropped, stemmed), at most
    MAX_QUERY_TERMS in a stable order."""
    with connection.cursor() as cursor:
        cursor.execute(_TERMS, {"config": TS_CONFIG, "query": query})
        return sorted(term for (term,) in cursor.fetchall())[:MAX_QUERY_TERMS]


def bm25_search(
    query: str,
    *,
    limit: int,
    collection_ids: Sequence[int] | None = None,
    document_ids: Sequence[int] | None = None,
    k1: float = K1,
    b: float = B,
) -> list[Scored]:
    """The `limit` best chunks of the current schema for `query` by BM25, best first."""
    terms = query_terms(query)
    if not terms:
        return []  # only stop words or punctuation: nothing to match
    params: dict[str, Any] = {
        "terms": terms,
        "k1": float(k1),
        "b": float(b),
        "limit": int(limit),
        "collections": list(collection_ids) if collection_ids is not None else None,
        "documents": list(document_ids) if document_ids is not None else None,
    }
    with connection.cursor() as cursor:
        cursor.execute(_SEARCH, params)
        return [Scored(int(pk), float(score)) for pk, score in cursor.fetchall()]
