"""`python -m benchmarks.rag.bounded --db DIR`: the BM25 leg's bounded scan against exact BM25,
per cap, on a database kept by `python -m benchmarks.rag.scale --keep DIR` (100k chunks).

For each cap (postings read per term) and depth (chunks asked for): the SQL's latency alone
(p50 / p95, the statement run by psycopg through Django, no hit loading), the share of exact
BM25's top 10 it returns, how often its certificate proves it exact, and SciFact's nDCG@10 of
the leg (documents ranked by their best chunk) against the exact scan's. Then the same quality
figures at SciFact's own size (9,625 chunks): the synthetic documents are deleted inside a
transaction that is rolled back, so the kept database is left as it was.

The database is migrated first (`migrate_schemas`), so one kept before the bounded scan existed
gets its df table and impact index; its postings are what indexing writes either way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from apps.rag.evaluation.metrics import documents, ndcg_at_10

from .. import common
from . import scifact


def say(line: str) -> None:
    print(f"[rag.bounded {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def _params(terms: list[str], limit: int) -> dict[str, Any]:
    from apps.rag import lexical

    return {
        "terms": terms,
        "k1": lexical.K1,
        "b": lexical.B,
        "limit": limit,
        "collections": None,
        "documents": None,
    }


def _compare(
    queries: dict[str, str], qrels: Any, caps: list[int], depths: list[int], timed: bool
) -> dict[str, Any]:
    from apps.rag import lexical
    from apps.rag.models import Chunk, Document

    names = {pk: f.removesuffix(".md") for pk, f in Document.objects.values_list("pk", "filename")}
    owner = dict(Chunk.objects.values_list("pk", "document_id"))
    terms = {q: lexical.query_terms(text) for q, text in queries.items()}
    ids = [q for q in queries if terms[q]]

    def ndcg(hits: list[Any], q: str) -> float:
        return ndcg_at_10(documents([owner[h.chunk_id] for h in hits], names, depth=10), qrels[q])

    out: dict[str, Any] = {}
    for depth in depths:
        exact, times = {}, []
        for q in ids:
            started = time.perf_counter()
            exact[q] = lexical.bm25_search(queries[q], limit=depth, exact=True)
            times.append((time.perf_counter() - started) * 1000)
        row: dict[str, Any] = {
            "exact": {"ndcg@10": statistics.fmean(ndcg(exact[q], q) for q in ids)}
        }
        if timed:
            row["exact"] |= {
                "p50_ms": common.percentile(times, 0.5),
                "p95_ms": common.percentile(times, 0.95),
            }
        for cap in caps:
            lexical.CAP = cap
            times, overlap, scores, certain = [], [], [], 0
            for q in ids:
                started = time.perf_counter()
                found = lexical.bounded_search(_params(terms[q], depth), filtered=False)
                times.append((time.perf_counter() - started) * 1000)
                top = {s.chunk_id for s in exact[q][:10]}
                overlap.append(len(top & {s.chunk_id for s in found.hits[:10]}) / max(1, len(top)))
                scores.append(ndcg(found.hits, q))
                certain += found.certain
            row[f"cap {cap}"] = {
                "top10_overlap": statistics.fmean(overlap),
                "certified": certain,
                "ndcg@10": statistics.fmean(scores),
            } | (
                {"p50_ms": common.percentile(times, 0.5), "p95_ms": common.percentile(times, 0.95)}
                if timed
                else {}
            )
        out[f"depth {depth}"] = row
        say(f"depth {depth}: {json.dumps(row)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="a folder kept by scale --keep")
    parser.add_argument("--caps", default="500,1000,2000", help="postings per term to try")
    parser.add_argument("--depths", default="10,100", help="chunks asked for (search k, hybrid)")
    parser.add_argument("--queries", type=int, default=300, help="SciFact test queries")
    args = parser.parse_args()
    caps = [int(x) for x in args.caps.split(",")]
    depths = [int(x) for x in args.depths.split(",")]
    from aisaas.devstack import EmbeddedPostgres, EmbeddedRedis

    machine = common.machine()
    postgres = EmbeddedPostgres(data_dir=args.db / "postgres" / "data", port=common.free_port())
    redis = EmbeddedRedis(data_dir=args.db / "redis", port=common.free_port())
    postgres.start()
    redis.start()
    try:
        scifact._setup({"DATABASE_URL": postgres.url, "REDIS_URL": redis.url})
        from django.db import connection, transaction
        from django_tenants.utils import schema_context

        from apps.workspaces.models import Workspace

        _, queries, _, test = scifact._read(None)
        chosen = {q: queries[q] for q in list(test)[: args.queries]}
        workspace = Workspace.objects.get(slug="scifact")
        report: dict[str, Any] = {"command": common.command("benchmarks.rag.bounded")}
        with schema_context(workspace.schema_name):
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
                cursor.execute("SELECT count(*) FROM rag_chunk")
                report["large_chunks"] = cursor.fetchone()[0]
            say(f"at {report['large_chunks']:,} chunks")
            report["large"] = _compare(chosen, test, caps, depths, timed=True)
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(
                        "DELETE FROM rag_chunk WHERE document_id IN (SELECT id FROM rag_document"
                        " WHERE filename LIKE 'synthetic-%%')"
                    )
                    cursor.execute("DELETE FROM rag_document WHERE filename LIKE 'synthetic-%%'")
                    cursor.execute("SELECT count(*) FROM rag_chunk")
                    report["small_chunks"] = cursor.fetchone()[0]
                say(f"at {report['small_chunks']:,} chunks (rolled back after)")
                report["small"] = _compare(chosen, test, caps, depths, timed=False)
                transaction.set_rollback(True)
        connection.close()
    finally:
        redis.stop()
        postgres.stop()
    report |= {"date": common.now(), "machine": machine, "load_average_end": common.load_average()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
