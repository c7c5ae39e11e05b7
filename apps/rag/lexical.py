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
N and the total length come from rag_lexicalstats, df from rag_termdf (both kept by the
statement trigger on rag_term, migrations 0003 and 0005).

Reading every posting of the query's terms grows with the corpus (448 ms p95 at 100k chunks;
docs/benchmarks.md), so a search reads at most CAP postings per term, best first: the
threshold algorithm over impact-ordered postings. Each term's CAP best postings by BM25 term
weight (the index rag_term_impact) give the candidates and a bound for everything unread; the
candidates with the best upper bounds are scored exactly from the term index. A term with at
most CAP postings is read whole, so the answer is exact BM25 unless a term has more; even then
it is exact whenever the bound proves it (the certificate, counted by benchmarks/rag/scale.py).
Otherwise a chunk that holds only common terms, none among their CAP best postings, can be
missed: on SciFact (9.6k chunks) the top 10 equals the exact one for every test query at CAP
1,000, at 100k chunks 89 % of it (docs/benchmarks.md). `exact=True` reads every posting.

The bound: the index orders a term's postings by x = tf / (tf + k1 · (1 - b + b · dl / A0))
with A0 fixed (IMPACT_AVGDL), while scoring uses the schema's avgdl A. With L0, L the length
norms under A0 and A, L / L0 lies between 1 and A0 / A, so L ≥ r · L0 with r = min(1, A0 / A),
and an unread posting (x ≤ x_last, the last impact read) weighs at most
x_last / (x_last + r · (1 - x_last)) under A, times idf · (k1 + 1): the term's theta.
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

# The impact index's key (migration 0005, identical expression): the BM25 term weight with
# k1 1.2, b 0.6 and avgdl fixed at IMPACT_AVGDL, so a term's best postings are read first.
IMPACT_K1 = 1.2
IMPACT_B = 0.6
IMPACT_AVGDL = 100.0
IMPACT_SQL = (
    "(t.tf::float8 / (t.tf::float8 + 1.2::float8 * (0.4::float8 + 0.6::float8 * t.dl::float8"
    " / 100.0::float8)))"
)
# The bounded scan reads at most CAP postings per term, best first, then scores exactly the
# max(RESCORE_MIN, 2 · limit) candidates with the highest upper bounds. CAP 1,000: SciFact's
# nDCG@10 unchanged (0.6886), p95 27 ms for the leg at 100k chunks (docs/benchmarks.md).
CAP = 1000
RESCORE_MIN = 200

_STATS = """
stats AS MATERIALIZED (
    SELECT chunks::float8 AS n, tokens::float8 / greatest(chunks, 1) AS avgdl
    FROM rag_lexicalstats WHERE id = 1
),
q AS MATERIALIZED (
    SELECT d.term, d.df, ln(1 + (s.n - d.df + 0.5) / (d.df + 0.5)) AS idf
    FROM rag_termdf d CROSS JOIN stats s
    WHERE d.term = ANY(%(terms)s) AND d.df > 0
)"""

# BM25 of one posting p (tf, dl) of a query term q, with the stats s.
_WEIGHT = (
    "q.idf * {p}.tf * (%(k1)s::float8 + 1)"
    " / ({p}.tf + %(k1)s::float8 * (1 - %(b)s::float8 + %(b)s::float8 * {p}.dl / s.avgdl))"
)

# Which chunks may be returned: those of ready documents (non-ready ones are few, so an
# anti-join against their chunks beats joining every candidate), within the filters.
_READY = """
{id} NOT IN (
    SELECT c.id FROM rag_chunk c JOIN rag_document d ON d.id = c.document_id
    WHERE d.status <> 'ready'
)"""
_FILTERED = """
EXISTS (
    SELECT 1 FROM rag_chunk c JOIN rag_document d ON d.id = c.document_id
    WHERE c.id = {id} AND d.status = 'ready'
      AND (%(collections)s::bigint[] IS NULL OR d.collection_id = ANY(%(collections)s::bigint[]))
      AND (%(documents)s::bigint[] IS NULL OR c.document_id = ANY(%(documents)s::bigint[]))
)"""

# Exact: every posting of the query's terms (index-only on rag_term_impact), df from
# rag_termdf, the BM25 sum per chunk.
_EXACT = f"""
WITH {_STATS},
scored AS (
    SELECT t.chunk_id, sum({_WEIGHT.format(p="t")}) AS score
    FROM q JOIN rag_term t ON t.term = q.term CROSS JOIN stats s
    GROUP BY t.chunk_id
)
SELECT scored.chunk_id, scored.score FROM scored
WHERE {{allowed}}
ORDER BY scored.score DESC, scored.chunk_id
LIMIT %(limit)s
"""  # noqa: S608 - built from this module's constants; every value is a parameter

# Bounded (threshold algorithm): each term's CAP best postings by impact; an unread posting
# of a truncated term adds at most theta (its idf times the weight bound of the last impact
# read, see _bound); each candidate's upper bound is what it scored plus the thetas of the
# truncated terms it was not seen in; the `rescore` best upper bounds are scored exactly from
# the term index (all query terms). The caller checks the certificate from the 'unseen' (sum
# of thetas: the most a chunk read nowhere can score) and 'next' (the first upper bound not
# rescored) rows.
_BOUNDED = f"""
WITH {_STATS},
top AS MATERIALIZED (
    SELECT q.term, q.idf, q.df > %(cap)s AS truncated, p.chunk_id, p.tf, p.dl, p.x
    FROM q CROSS JOIN LATERAL (
        SELECT t.chunk_id, t.tf, t.dl, {IMPACT_SQL} AS x
        FROM rag_term t WHERE t.term = q.term
        ORDER BY {IMPACT_SQL} DESC
        LIMIT %(cap)s
    ) p
),
theta AS MATERIALIZED (
    SELECT top.term, top.idf * (%(k1)s::float8 + 1) * min(top.x)
        / (min(top.x) + least(1, %(avgdl0)s::float8 / s.avgdl) * (1 - min(top.x))) AS theta
    FROM top CROSS JOIN stats s
    WHERE top.truncated
    GROUP BY top.term, top.idf, s.avgdl
),
unseen AS MATERIALIZED (
    SELECT coalesce(sum(theta), 0) AS theta FROM theta
),
cand AS (
    SELECT p.chunk_id, sum({_WEIGHT.format(p="p")}) AS partial,
           sum(coalesce(h.theta, 0)) AS seen_theta
    FROM top p JOIN q ON q.term = p.term LEFT JOIN theta h ON h.term = p.term
    CROSS JOIN stats s
    GROUP BY p.chunk_id
),
bounded AS MATERIALIZED (
    SELECT cand.chunk_id, cand.partial + u.theta - cand.seen_theta AS upper
    FROM cand CROSS JOIN unseen u
    WHERE {{allowed}}
    ORDER BY upper DESC, cand.chunk_id
    LIMIT %(rescore)s + 1
),
numbered AS MATERIALIZED (
    SELECT chunk_id, upper, row_number() OVER (ORDER BY upper DESC, chunk_id) AS rn
    FROM bounded
),
rescored AS (
    SELECT n.chunk_id, sum({_WEIGHT.format(p="t")}) AS score
    FROM numbered n CROSS JOIN q
    JOIN rag_term t ON t.term = q.term AND t.chunk_id = n.chunk_id
    CROSS JOIN stats s
    WHERE n.rn <= %(rescore)s
    GROUP BY n.chunk_id
)
SELECT 'hit', chunk_id, score FROM rescored
UNION ALL SELECT 'unseen', NULL, (SELECT theta FROM unseen)
UNION ALL SELECT 'next', NULL, (SELECT upper FROM numbered WHERE rn = %(rescore)s + 1)
"""  # noqa: S608 - built from this module's constants; every value is a parameter


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
    exact: bool = False,
) -> list[Scored]:
    """The `limit` best chunks of the current schema for `query` by BM25, best first: by the
    bounded scan (see the module docstring), or by every posting for `exact`, another k1 or
    b than the impact index's, or a document filter (few chunks, rarely among a term's best
    postings)."""
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
    if not exact and (k1, b) == (IMPACT_K1, IMPACT_B) and document_ids is None:
        return bounded_search(params, filtered=collection_ids is not None).hits
    sql = _EXACT.format(allowed=_allowed("scored.chunk_id", filtered=not _unfiltered(params)))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [Scored(int(pk), float(score)) for pk, score in cursor.fetchall()]


def _unfiltered(params: dict[str, Any]) -> bool:
    return params["collections"] is None and params["documents"] is None


def _allowed(column: str, *, filtered: bool) -> str:
    return (_FILTERED if filtered else _READY).format(id=column)


@dataclass(frozen=True, slots=True)
class Bounded:
    hits: list[Scored]
    certain: bool  # the bound proves these are the exact top `limit`


def bounded_search(params: dict[str, Any], *, filtered: bool) -> Bounded:
    """The bounded scan's top `limit` (params as bm25_search builds them), and whether its
    certificate holds."""
    limit = params["limit"]
    sql = _BOUNDED.format(allowed=_allowed("cand.chunk_id", filtered=filtered))
    extra = {"cap": CAP, "rescore": max(RESCORE_MIN, 2 * limit), "avgdl0": IMPACT_AVGDL}
    with connection.cursor() as cursor:
        cursor.execute(sql, {**params, **extra})
        rows = cursor.fetchall()
    hits = sorted(
        (Scored(int(pk), float(score)) for kind, pk, score in rows if kind == "hit"),
        key=lambda s: (-s.score, s.chunk_id),
    )
    unseen = next(float(score) for kind, _, score in rows if kind == "unseen")
    following = next(score for kind, _, score in rows if kind == "next")
    # Anything not rescored scores at most `bar`: a chunk read in no list at most the sum of
    # the thetas, a candidate past the rescored ones at most its upper bound.
    bar = max(unseen, float(following) if following is not None else 0.0)
    certain = bar <= 0.0 or (len(hits) >= limit and hits[limit - 1].score > bar)
    return Bounded(hits=hits[:limit], certain=certain)
