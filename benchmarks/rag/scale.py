"""`python -m benchmarks.rag.scale` (`make bench-rag-scale`): search latency at SciFact's size
(5,183 abstracts, ~9.6k chunks) and at 100,000 chunks.

A private PostgreSQL and Redis, `migrate_schemas`, one workspace, then:

1. SciFact through the real pipeline, as benchmarks/rag/scifact.py ingests it (`document_add`,
   the indexer's parse + chunk + postings step, embeddings through the gateway's `embed` alias).
   The vectors are kept in a cache file (--cache, by chunk hash), so a second run skips
   embedding them (~4 minutes on onnx-int8); it is used only if the gateway still embeds with
   the same model and runtime (onnx-int8 and torch-fp32 vectors differ by quantisation noise).
2. Latency at that size.
3. Padding to --chunks with synthetic documents of CHUNKS_PER_DOC chunks. A synthetic chunk is
   sentences drawn at random from the corpus, as many words as a real chunk drawn at random,
   under the title of its first sentence's abstract; its vector is the normalised mean of
   those abstracts' real vectors plus Gaussian noise (NOISE per dimension): the distribution
   of real text's vectors, without running the model 90,000 times. Chunks go in by COPY (the
   HNSW index is maintained row by row, as for any insert); postings by the product's own
   `postings_write(document)` per document, so rag_term and the statistics its trigger keeps
   are exactly what indexing writes.
4. VACUUM ANALYZE, as autovacuum would after such a load, then latency again.

Latency, per query, modes interleaved in a shuffled order: `search_chunks(k=--k)` end to end
(query embedding through the gateway included), each leg's SQL alone at hybrid's depth
(`bm25_search`, `dense_search` with the query embedded beforehand) and the query embedding
alone; WARMUP unmeasured queries first. Then EXPLAIN (ANALYZE, BUFFERS) of both legs' SQL,
captured from the product's own calls, for the median and the slowest lexical query.
`--keep DIR` leaves the database in DIR/postgres/data to profile it afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from apps.rag.evaluation.metrics import Qrels, documents, ndcg_at_10

from .. import common
from ..chat_streams.rig import private_services
from . import scifact

CACHE = Path(__file__).resolve().parents[2] / ".data" / "bench" / "rag-scale-vectors.npz"
CHUNKS_PER_DOC = 10
NOISE = 0.02  # per dimension: ‖noise‖ ≈ 0.39 against the unit mean, cosine to it ≈ 0.93
WARMUP = 20
DOCS_PER_TRANSACTION = 200
VECTOR_LITERAL = re.compile(r"'\[[-0-9.e,]+\]'")  # the query's 384 floats, in a plan
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")
LEGS = ("hybrid", "lexical", "dense", "bm25 leg", "dense leg", "embedding")


def say(line: str) -> None:
    """Progress goes to stderr: stdout carries the table or the JSON."""
    print(f"[rag.scale {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


# --- the corpus ---------------------------------------------------------------------------


def _runtime(workspace: Any) -> str:
    """The gateway's embedding model and, for the offline one, its runtime (onnx-int8,
    torch-fp32, …: the same model name, vectors that differ by quantisation noise)."""
    from apps.llm.core.embeddings import load_model
    from apps.llm.services import Actor, llm_embed
    from apps.rag.services import EMBED_FEATURE

    probe = llm_embed(
        workspace=workspace, actor=Actor("system", "bench"), feature=EMBED_FEATURE, inputs=("x",)
    )
    return f"{probe.model} ({load_model().runtime})" if probe.provider == "local" else probe.model


def _known(path: Path | None, runtime: str) -> scifact.Known | None:
    """The cached vectors, if the gateway embeds with the same model and runtime now."""
    if path is None or not path.exists():
        return None
    with np.load(path) as data:
        cached = str(data["runtime"]) if "runtime" in data else str(data["model"])
        if cached != runtime:
            say(f"cache {path} holds {cached} vectors, the gateway embeds with {runtime}: unused")
            return None
        model = str(data["model"])
        vectors = dict(zip(data["hashes"].tolist(), data["vectors"].tolist(), strict=True))
    return scifact.Known(model=model, vectors=vectors)


def _save_cache(path: Path, runtime: str, known: scifact.Known | None) -> None:
    """This run's vectors, plus those of the cache it used that this run did not hold (a
    --limit run keeps the rest of the corpus's)."""
    from apps.rag.models import Chunk

    rows = list(Chunk.objects.values_list("content_hash", "vector", "embedding_model"))
    vectors = {**(known.vectors if known else {}), **{h: v for h, v, _ in rows}}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        runtime=np.array(runtime),
        model=np.array(rows[0][2]),
        hashes=np.array(list(vectors)),
        vectors=np.array([np.asarray(v) for v in vectors.values()], dtype=np.float32),
    )


def _pad(target: int, corpus: list[dict[str, str]], seed: int) -> dict[str, Any]:
    """Synthetic documents until the schema holds `target` chunks (see the module docstring)."""
    from django.db import connection, transaction

    from apps.rag.lexical import postings_write
    from apps.rag.models import Chunk, Document
    from apps.rag.services import collection_default

    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    noise = np.random.default_rng(seed)
    started = time.perf_counter()
    real = list(Chunk.objects.values_list("document__filename", "text", "vector"))
    model = Chunk.objects.values_list("embedding_model", flat=True).first() or ""
    lengths = [len(text.split()) for _, text, _ in real]
    by_doc: dict[str, list[np.ndarray]] = {}
    for filename, _, vector in real:
        by_doc.setdefault(filename.removesuffix(".md"), []).append(np.asarray(vector))
    doc_vector = {d: _unit(np.mean(vs, axis=0)) for d, vs in by_doc.items()}
    titles = {r["_id"]: r["title"] for r in corpus}
    sentences = [(r["_id"], s) for r in corpus for s in SENTENCE.split(r["text"]) if s.strip()]
    missing = target - len(real)
    n_docs = -(-missing // CHUNKS_PER_DOC)
    collection = collection_default()
    copy_seconds = postings_seconds = 0.0
    made = 0
    for first in range(0, n_docs, DOCS_PER_TRANSACTION):
        batch = range(first, min(first + DOCS_PER_TRANSACTION, n_docs))
        with transaction.atomic():
            docs = Document.objects.bulk_create(
                [
                    Document(
                        collection=collection,
                        title=f"synthetic-{i:06d}.md",
                        filename=f"synthetic-{i:06d}.md",
                        source=Document.Source.TEXT,
                        mime="text/markdown",
                        content_hash=hashlib.sha256(f"synthetic-{i}".encode()).hexdigest(),
                        status=Document.Status.READY,
                        embedding_model=model,
                    )
                    for i in batch
                ]
            )
            rows = []
            for doc in docs:
                count = min(CHUNKS_PER_DOC, missing - made)
                rows += [
                    _synthetic(doc.pk, o, rng, noise, lengths, sentences, titles, doc_vector, model)
                    for o in range(count)
                ]
                made += count
                doc.chunk_count = count
            Document.objects.bulk_update(docs, ["chunk_count"])
            t0 = time.perf_counter()
            with connection.cursor() as cursor, cursor.cursor.copy(_COPY) as copy:
                for row in rows:
                    copy.write_row(row)
            t1 = time.perf_counter()
            for doc in docs:
                postings_write(doc.pk)
            t2 = time.perf_counter()
            copy_seconds += t1 - t0
            postings_seconds += t2 - t1
        say(f"padded {made:,} of {missing:,} chunks")
    vacuum_started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in ("rag_document", "rag_chunk", "rag_term", "rag_lexicalstats"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return {
        "documents": n_docs,
        "chunks": made,
        "seconds": time.perf_counter() - started,
        "copy_seconds": copy_seconds,
        "postings_seconds": postings_seconds,
        "vacuum_analyze_seconds": time.perf_counter() - vacuum_started,
    }


_COPY = (
    "COPY rag_chunk (document_id, ordinal, text, embed_text, heading_path, page, token_count,"
    " content_hash, embedding_model, dims, vector) FROM STDIN"
)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / float(np.linalg.norm(v))


def _synthetic(
    document_id: int,
    ordinal: int,
    rng: random.Random,
    noise: np.random.Generator,
    lengths: list[int],
    sentences: list[tuple[str, str]],
    titles: dict[str, str],
    doc_vector: dict[str, np.ndarray],
    model: str,
) -> tuple[Any, ...]:
    want = rng.choice(lengths)
    picked: list[tuple[str, str]] = []
    words = 0
    while words < want:
        picked.append(rng.choice(sentences))
        words += len(picked[-1][1].split())
    text = " ".join(s for _, s in picked)
    title = titles[picked[0][0]]
    embed_text = f"{title}\n{text}"
    mean = _unit(np.mean([doc_vector[d] for d, _ in picked], axis=0))
    vector = _unit(mean + noise.normal(0.0, NOISE, mean.shape))
    return (
        document_id,
        ordinal,
        text,
        embed_text,
        [title[:300]],
        None,
        len(embed_text.split()),
        hashlib.sha256(embed_text.encode()).hexdigest(),
        model,
        len(vector),
        "[" + ",".join(f"{x:.7g}" for x in vector) + "]",
    )


# --- measuring ----------------------------------------------------------------------------


def _measure(
    workspace: Any, queries: dict[str, str], qrels: Qrels, k: int, seed: int
) -> dict[str, Any]:
    """Every leg of LEGS per query, in a shuffled order per query (so a burst of load from
    elsewhere spreads over all of them), after WARMUP unmeasured queries."""
    from apps.llm.services import Actor, llm_embed
    from apps.rag.lexical import bm25_search
    from apps.rag.retrieval import CANDIDATES, SEARCH_FEATURE, dense_search, embed_query
    from apps.rag.retrieval import search_chunks as search

    ids = list(queries)
    vectors: dict[str, list[float]] = {}
    model = ""
    for start in range(0, len(ids), 64):
        batch = ids[start : start + 64]
        reply = llm_embed(
            workspace=workspace,
            actor=Actor("system", "bench"),
            feature=SEARCH_FEATURE,
            inputs=tuple(queries[q] for q in batch),
        )
        model = reply.model
        vectors.update(
            {q: [float(x) for x in v] for q, v in zip(batch, reply.vectors, strict=True)}
        )

    def legs(q: str) -> dict[str, Callable[[], object]]:
        text = queries[q]
        return {
            "hybrid": lambda: search(workspace=workspace, query=text, k=k),
            "lexical": lambda: search(workspace=workspace, query=text, k=k, mode="lexical"),
            "dense": lambda: search(workspace=workspace, query=text, k=k, mode="dense"),
            "bm25 leg": lambda: bm25_search(text, limit=CANDIDATES),
            "dense leg": lambda: dense_search(vectors[q], model=model, limit=CANDIDATES),
            "embedding": lambda: embed_query(workspace, text),
        }

    for q in ids[:WARMUP]:
        for run in legs(q).values():
            run()
    rng = random.Random(seed)  # noqa: S311 - the order of the legs, not a secret
    times: dict[str, dict[str, float]] = {leg: {} for leg in LEGS}
    hits: dict[str, list[int]] = {}
    for q in ids:
        order = list(legs(q).items())
        rng.shuffle(order)
        for leg, run in order:
            started = time.perf_counter()
            found = run()
            times[leg][q] = (time.perf_counter() - started) * 1000
            if leg == "hybrid":
                hits[q] = [h.document_id for h in found]  # type: ignore[attr-defined]
    names = _document_names()
    certified = {depth: _certified(queries, ids, depth) for depth in (k, CANDIDATES)}
    ndcg = statistics.fmean(ndcg_at_10(documents(hits[q], names, depth=10), qrels[q]) for q in ids)
    return {
        "legs": {leg: _stats(list(times[leg].values())) for leg in LEGS},
        "hybrid_ndcg@10": ndcg,
        "bounded_certified": certified,
        "slowest_lexical": max(times["bm25 leg"], key=lambda q: times["bm25 leg"][q]),
        "median_lexical": sorted(times["bm25 leg"], key=lambda q: times["bm25 leg"][q])[
            len(ids) // 2
        ],
        "vectors": vectors,
        "model": model,
    }


def _certified(queries: dict[str, str], ids: list[str], limit: int) -> int:
    """How many queries the lexical leg's bounded scan answered with its certificate (proved
    exact; the others may differ from exact BM25)."""
    from apps.rag import lexical

    held = 0
    for q in ids:
        terms = lexical.query_terms(queries[q])
        if not terms:
            continue
        params = {
            "terms": terms,
            "k1": lexical.K1,
            "b": lexical.B,
            "limit": limit,
            "collections": None,
            "documents": None,
        }
        held += lexical.bounded_search(params, filtered=False).certain
    return held


def _document_names() -> dict[int, str]:
    from apps.rag.models import Document

    rows = Document.objects.values_list("pk", "filename")
    return {pk: filename.removesuffix(".md") for pk, filename in rows}


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": common.percentile(values, 0.5),
        "p95_ms": common.percentile(values, 0.95),
        "mean_ms": statistics.fmean(values),
    }


@contextmanager
def _explained(plans: dict[str, str]) -> Iterator[None]:
    """EXPLAIN (ANALYZE, BUFFERS) of each leg's search SQL, run just before the product runs it
    (the same statement, parameters and transaction settings)."""
    from django.db import connection

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        leg = (
            ("lexical bounded" if "LATERAL" in sql else "lexical exact")
            if "FROM rag_term t" in sql
            else "dense"
            if "<=>" in sql
            else None
        )
        if leg is not None:
            raw = context["cursor"].cursor
            raw.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = "\n".join(row[0] for row in raw.fetchall())
            plans[leg] = VECTOR_LITERAL.sub("'[…]'", plan)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


def _explain(queries: dict[str, str], measured: dict[str, Any]) -> dict[str, dict[str, str]]:
    from apps.rag.lexical import bm25_search
    from apps.rag.retrieval import CANDIDATES, dense_search

    out = {}
    for label in ("median_lexical", "slowest_lexical"):
        q = measured[label]
        plans: dict[str, str] = {}
        with _explained(plans):
            bm25_search(queries[q], limit=CANDIDATES)
            dense_search(measured["vectors"][q], model=measured["model"], limit=CANDIDATES)
        out[label] = {"query": queries[q], **plans}
    return out


def _sizes() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM rag_chunk), (SELECT count(*) FROM rag_term),"
            " (SELECT chunks FROM rag_lexicalstats WHERE id = 1),"
            " (SELECT tokens FROM rag_lexicalstats WHERE id = 1),"
            " pg_total_relation_size('rag_chunk'), pg_total_relation_size('rag_term'),"
            " pg_relation_size('rag_chunk_hnsw_384'), current_setting('shared_buffers')"
        )
        row = cursor.fetchone()
    assert row is not None
    chunks, postings, n, tokens, chunk_bytes, term_bytes, hnsw_bytes, buffers = row
    return {
        "chunks": chunks,
        "postings": postings,
        "stats_chunks": n,
        "avgdl": tokens / max(n, 1),
        "rag_chunk_mb": chunk_bytes / 2**20,
        "rag_term_mb": term_bytes / 2**20,
        "hnsw_384_mb": hnsw_bytes / 2**20,
        "shared_buffers": buffers,
    }


# --- report -------------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    small, big = report["sizes"]
    a, b = report["latency"]
    lines = [
        f"SciFact ingest ({report['ingest']['embedding']}): {report['ingest']['chunks']:,} chunks "
        f"({report['ingest']['embedded']:,} embedded, {report['ingest']['reused']:,} from the "
        f"cache) in {report['ingest']['seconds']:.0f} s; padding: {report['pad']['chunks']:,} "
        f"chunks in {report['pad']['documents']:,} documents, {report['pad']['seconds']:.0f} s "
        f"(COPY {report['pad']['copy_seconds']:.0f} s, postings "
        f"{report['pad']['postings_seconds']:.0f} s, VACUUM ANALYZE "
        f"{report['pad']['vacuum_analyze_seconds']:.0f} s)",
        f"{report['queries']} SciFact test queries, search_chunks k={report['k']}, "
        f"legs at depth {report['depth']}; ms",
        f"  {'':<12}{small['chunks']:>14,} chunks{big['chunks']:>22,} chunks",
        f"  {'':<12}" + "".join(f"{x:>9}" for x in ("p50", "p95", "mean") * 2),
    ]
    for leg in LEGS:
        row = a["legs"][leg], b["legs"][leg]
        lines.append(
            f"  {leg:<12}"
            + "".join(f"{r[key]:>9.1f}" for r in row for key in ("p50_ms", "p95_ms", "mean_ms"))
        )
    lines.append(
        f"  hybrid nDCG@10: {a['hybrid_ndcg@10']:.4f} → {b['hybrid_ndcg@10']:.4f} "
        "(synthetic chunks repeat the corpus's sentences: they compete)"
    )
    for label, measured in (("small", a), ("large", b)):
        held = measured.get("bounded_certified", {})
        lines.append(
            f"  lexical bounded scan certified ({label}): "
            + ", ".join(f"{n}/{report['queries']} at limit {d}" for d, n in held.items())
            + " (proved exact; the rest are the bounded scan's answer)"
        )
    for label, size in (("before", small), ("after", big)):
        lines.append(
            f"  sizes {label}: rag_chunk {size['rag_chunk_mb']:.0f} MB, rag_term "
            f"{size['rag_term_mb']:.0f} MB ({size['postings']:,} postings, avgdl "
            f"{size['avgdl']:.0f}), HNSW 384 {size['hnsw_384_mb']:.0f} MB, shared_buffers "
            f"{size['shared_buffers']}"
        )
    for label, plans in report["explain"].items():
        lines += [f"EXPLAIN ANALYZE at {big['chunks']:,} chunks, {label}: {plans['query']!r}"]
        for leg in ("lexical bounded", "lexical exact", "dense"):
            if leg in plans:
                lines += [f"-- {leg}", plans[leg]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks after padding")
    parser.add_argument("--queries", type=int, default=200, help="SciFact test queries")
    parser.add_argument("--k", type=int, default=10, help="search_chunks' k")
    parser.add_argument("--limit", type=int, default=None, help="only the first N abstracts")
    parser.add_argument("--cache", type=Path, default=CACHE, help="the SciFact vectors cache")
    parser.add_argument("--no-cache", action="store_true", help="embed SciFact again")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="a new folder to keep the database in (postgres/data), to profile it afterwards",
    )
    args = parser.parse_args()
    machine = common.machine()
    if args.keep is not None:
        args.keep.mkdir(parents=True)  # a new folder: never another run's database
    with (
        tempfile.TemporaryDirectory(prefix="aisaas-bench-rag-scale-") as scratch,
        private_services(args.keep or Path(scratch)) as urls,
    ):
        say("migrate_schemas")
        scifact._setup(urls)
        from django.db import connection
        from django_tenants.utils import schema_context

        from apps.rag.retrieval import CANDIDATES

        corpus, queries, _, test = scifact._read(args.limit)
        chosen = {q: queries[q] for q in list(test)[: args.queries]}
        qrels = {q: test[q] for q in chosen}
        workspace, owner = scifact._workspace()
        with schema_context(workspace.schema_name):
            cache = None if args.no_cache else args.cache
            runtime = _runtime(workspace)
            say(f"SciFact through the pipeline, embedded with {runtime}")
            known = _known(cache, runtime)
            ingest = scifact._ingest(workspace, owner, corpus, known)
            ingest["embedding"] = runtime
            if cache is not None and ingest["embedded"]:
                _save_cache(cache, runtime, known)
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
            sizes = [_sizes()]
            say(f"measuring at {sizes[0]['chunks']:,} chunks")
            latency = [_measure(workspace, chosen, qrels, args.k, args.seed)]
            say(f"padding to {args.chunks:,} chunks")
            pad = _pad(args.chunks, corpus, args.seed)
            sizes.append(_sizes())
            say(f"measuring at {sizes[1]['chunks']:,} chunks")
            latency.append(_measure(workspace, chosen, qrels, args.k, args.seed))
            explain = _explain(chosen, latency[1])
        connection.close()
    for measured in latency:
        del measured["vectors"]
    report = {
        "command": common.command("benchmarks.rag.scale"),
        "date": common.now(),
        "machine": machine,
        "load_average_end": common.load_average(),
        "queries": len(chosen),
        "k": args.k,
        "depth": CANDIDATES,
        "ingest": ingest,
        "pad": pad,
        "sizes": sizes,
        "latency": latency,
        "explain": explain,
    }
    print(json.dumps(report, indent=2, default=str) if args.json else render(report))


if __name__ == "__main__":
    main()
