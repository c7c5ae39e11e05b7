"""`python -m benchmarks.rag.scifact` (`make bench-rag`): BEIR SciFact through our retrieval.

A private PostgreSQL and Redis (never the dev or test data), `migrate_schemas`, one workspace.
Every abstract goes through the real pipeline: `document_add` of "# title\\n\\ntext" as
Markdown, the indexer's parser, chunker and BM25 postings, then embeddings through the
gateway's `embed` alias (the offline all-MiniLM-L6-v2) batched across documents (see
`_ingest`), timed as ingestion chunks/s.

Tuning uses the train qrels only: BM25's k1 and b, RRF's k and the convex dense weight. The
test split is scored once with the chosen values: nDCG@10 over documents (a document ranks
where its best chunk does). Latency: `search_chunks` end to end per test query and mode
(query embedding through the gateway included), p50/p95.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.rag.evaluation.metrics import Qrels, mean_ndcg

from .. import common
from ..chat_streams.rig import private_services
from .metrics import best

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "scifact"
DEPTH = 100  # candidates per leg, as `search_chunks` fuses
K1_GRID = (0.9, 1.2)
B_GRID = (0.4, 0.6, 0.75)
RRF_GRID = (10.0, 30.0, 60.0, 100.0)
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(1, 10))
Runs = dict[str, list[int]]


def _setup(urls: dict[str, str]) -> None:
    os.environ.update(urls)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aisaas.settings.test")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["RAG_MAX_DOCUMENTS"] = "100000"
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        os.environ[key] = ""  # the offline embedder, whatever the shell holds
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate_schemas", executor="standard", verbosity=0)


def _workspace() -> tuple[Any, Any]:
    from apps.workspaces.models import AISettings, PlanCode, User
    from apps.workspaces.services import workspace_create

    owner = User.objects.create_user("bench@scifact.test", "x")
    workspace = workspace_create(
        name="SciFact", slug="scifact", owner=owner, plan=PlanCode.ENTERPRISE
    )
    AISettings.objects.update_or_create(workspace=workspace, defaults={"daily_token_limit": 10**12})
    return workspace, owner


def _read(limit: int | None) -> tuple[list[dict[str, str]], dict[str, str], Qrels, Qrels]:
    with (DATA / "corpus.jsonl").open() as f:
        corpus = [json.loads(line) for line in f][:limit]
    with (DATA / "queries.jsonl").open() as f:
        queries = {q["_id"]: q["text"] for q in map(json.loads, f)}
    splits = []
    for name in ("train", "test"):
        qrels: dict[str, set[str]] = {}
        for line in (DATA / "qrels" / f"{name}.tsv").read_text().splitlines()[1:]:
            query, doc, _ = line.split("\t")
            qrels.setdefault(query, set()).add(doc)
        splits.append(qrels)
    return corpus, queries, splits[0], splits[1]


@dataclass(frozen=True)
class Known:
    """Vectors kept from an earlier run (benchmarks/rag/scale.py's cache): chunk hash → vector,
    and the model that made them (used only when the gateway still answers with it)."""

    model: str
    vectors: Mapping[str, Sequence[float]]


def _ingest(
    workspace: Any, owner: Any, corpus: list[dict[str, str]], known: Known | None = None
) -> dict[str, Any]:
    """The bulk path: `document_add`, then the indexer's own parse + chunk + postings step
    (`_rechunk`) per document, then embeddings of every chunk through the gateway's `embed`
    alias in batches of RAG_EMBED_BATCH across documents. `document_index` embeds one
    document per call (1-2 abstracts' chunks), which starves the CPU-bound offline model of
    batching here: 3.5 chunks/s against ~12. Chunks whose hash `known` holds get its vector."""
    from django.conf import settings

    from apps.llm.services import Actor, llm_embed
    from apps.rag.models import Chunk, Document
    from apps.rag.services import EMBED_FEATURE, _rechunk, document_add

    started = time.perf_counter()
    for record in corpus:
        data = f"# {record['title']}\n\n{record['text']}".encode()
        document = document_add(
            user=owner, data=data, filename=f"{record['_id']}.md", mime="text/markdown"
        )
        _rechunk(document)
    chunked = time.perf_counter() - started
    rows = list(Chunk.objects.order_by("pk").values_list("pk", "embed_text", "content_hash"))
    vectors = known.vectors if known else {}
    todo = [(pk, text) for pk, text, digest in rows if digest not in vectors]
    kept = [(pk, vectors[digest]) for pk, _, digest in rows if digest in vectors]
    model = known.model if known else ""
    _store_vectors(kept, model)
    for start in range(0, len(todo), settings.RAG_EMBED_BATCH):
        batch = todo[start : start + settings.RAG_EMBED_BATCH]
        reply = llm_embed(
            workspace=workspace,
            actor=Actor("system", "rag"),
            feature=EMBED_FEATURE,
            inputs=tuple(text for _, text in batch),
        )
        model = reply.model
        _store_vectors([(pk, v) for (pk, _), v in zip(batch, reply.vectors, strict=True)], model)
    Document.objects.update(status=Document.Status.READY, embedding_model=model)
    seconds = time.perf_counter() - started
    return {
        "documents": len(corpus),
        "chunks": len(rows),
        "embedded": len(todo),
        "reused": len(kept),
        "seconds": seconds,
        "chunk_seconds": chunked,
    }


def _store_vectors(rows: Sequence[tuple[int, Sequence[float]]], model: str) -> None:
    """One UPDATE per 500 chunks, as the indexer stores a batch."""
    from apps.rag.models import Chunk

    chunks = [
        Chunk(pk=pk, vector=[float(x) for x in v], dims=len(v), embedding_model=model)
        for pk, v in rows
    ]
    Chunk.objects.bulk_update(chunks, ["vector", "dims", "embedding_model"], batch_size=500)


def _corpus_ids() -> dict[int, str]:
    from apps.rag.models import Chunk

    rows = Chunk.objects.values_list("pk", "document__filename")
    return {pk: filename.removesuffix(".md") for pk, filename in rows}


def _dense_runs(workspace: Any, queries: dict[str, str]) -> tuple[Runs, dict[str, list[Any]]]:
    from apps.llm.services import Actor, llm_embed
    from apps.rag.retrieval import SEARCH_FEATURE, dense_search

    ids = list(queries)
    legs: dict[str, list[Any]] = {}
    for start in range(0, len(ids), 64):
        batch = ids[start : start + 64]
        reply = llm_embed(
            workspace=workspace,
            actor=Actor("system", "bench"),
            feature=SEARCH_FEATURE,
            inputs=tuple(queries[q] for q in batch),
        )
        for q, vector in zip(batch, reply.vectors, strict=True):
            legs[q] = dense_search(list(vector), model=reply.model, limit=DEPTH)
    return {q: [s.chunk_id for s in leg] for q, leg in legs.items()}, legs


def _lexical(queries: dict[str, str], k1: float, b: float) -> dict[str, list[Any]]:
    from apps.rag.lexical import bm25_search

    return {q: bm25_search(text, limit=DEPTH, k1=k1, b=b) for q, text in queries.items()}


def _ids(legs: dict[str, list[Any]]) -> Runs:
    return {q: [s.chunk_id for s in leg] for q, leg in legs.items()}


def _tune_and_score(
    workspace: Any, queries: dict[str, str], train: Qrels, test: Qrels
) -> dict[str, Any]:
    from apps.rag.retrieval import fuse_convex, fuse_rrf

    ids = _corpus_ids()
    train_q = {q: queries[q] for q in train}
    test_q = {q: queries[q] for q in test}
    grid = [(k1, b) for k1 in K1_GRID for b in B_GRID]
    bm25_train = {kb: mean_ndcg(_ids(_lexical(train_q, *kb)), train, ids) for kb in grid}
    k1, b = max(bm25_train, key=lambda kb: bm25_train[kb])
    lexical = _lexical({**train_q, **test_q}, k1, b)
    _, dense = _dense_runs(workspace, {**train_q, **test_q})

    def rrf(split: Qrels, k: float) -> float:
        runs = {q: [c for c, _ in fuse_rrf([lexical[q], dense[q]], k=int(k))] for q in split}
        return mean_ndcg(runs, split, ids)

    def convex(split: Qrels, w: float) -> float:
        runs = {q: [c for c, _ in fuse_convex(lexical[q], dense[q], dense_weight=w)] for q in split}
        return mean_ndcg(runs, split, ids)

    rrf_k, rrf_train, rrf_grid = best(RRF_GRID, lambda k: rrf(train, k))
    weight, convex_train, convex_grid = best(WEIGHT_GRID, lambda w: convex(train, w))
    return {
        "bm25_grid_train": {f"k1={k} b={bb}": round(v, 4) for (k, bb), v in bm25_train.items()},
        "rrf_grid_train": {f"k={k:g}": round(v, 4) for k, v in rrf_grid.items()},
        "convex_grid_train": {f"w={w:g}": round(v, 4) for w, v in convex_grid.items()},
        "chosen": {"k1": k1, "b": b, "rrf_k": rrf_k, "dense_weight": weight},
        "train": {
            "lexical": bm25_train[(k1, b)],
            "dense": mean_ndcg(_ids({q: dense[q] for q in train}), train, ids),
            "rrf": rrf_train,
            "convex": convex_train,
        },
        "test": {
            "lexical": mean_ndcg(_ids({q: lexical[q] for q in test}), test, ids),
            "dense": mean_ndcg(_ids({q: dense[q] for q in test}), test, ids),
            "rrf": rrf(test, rrf_k),
            "convex": convex(test, weight),
        },
    }


def _latency(workspace: Any, queries: dict[str, str], test: Qrels) -> dict[str, Any]:
    """`search_chunks` as callers use it (module defaults), per test query and mode; its
    hybrid ranking is scored too, to check the defaults give the tuned figure."""
    from apps.rag.retrieval import MAX_K, search_chunks

    ids = _corpus_ids()
    out: dict[str, Any] = {}
    for mode in ("lexical", "dense", "hybrid"):
        times, runs = [], {}
        for q in test:
            started = time.perf_counter()
            hits = search_chunks(workspace=workspace, query=queries[q], k=MAX_K, mode=mode)
            times.append((time.perf_counter() - started) * 1000)
            runs[q] = [h.chunk_id for h in hits]
        out[mode] = {
            "p50_ms": common.percentile(times, 0.5),
            "p95_ms": common.percentile(times, 0.95),
            "ndcg@10": mean_ndcg(runs, test, ids),
        }
    return out


def render(report: dict[str, Any]) -> str:
    s, t, tr = report["scores"], report["scores"]["test"], report["scores"]["train"]
    ing = report["ingest"]
    lines = [
        f"SciFact: {ing['documents']:,} documents → {ing['chunks']:,} chunks, "
        f"ingested in {ing['seconds']:.0f} s ({ing['chunks'] / ing['seconds']:.1f} chunks/s; "
        f"parse + chunk + postings {ing['chunk_seconds']:.0f} s of it)",
        f"chosen on train: {s['chosen']}",
        f"  {'leg':<10}{'train':>10}{'test nDCG@10':>14}",
        *(f"  {m:<10}{tr[m]:>10.4f}{t[m]:>14.4f}" for m in ("lexical", "dense", "rrf", "convex")),
        f"search_chunks on the test queries (k={report['k']}):",
        f"  {'mode':<10}{'p50 ms':>10}{'p95 ms':>10}{'nDCG@10':>10}",
    ]
    for mode, row in report["latency"].items():
        lines.append(
            f"  {mode:<10}{row['p50_ms']:>10.1f}{row['p95_ms']:>10.1f}{row['ndcg@10']:>10.4f}"
        )
    lines.append(
        f"grids (train): {s['bm25_grid_train']} {s['rrf_grid_train']} {s['convex_grid_train']}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N abstracts")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    started = common.machine()
    with (
        tempfile.TemporaryDirectory(prefix="aisaas-bench-rag-") as workdir,
        private_services(Path(workdir)) as urls,
    ):
        _setup(urls)
        from django.db import connection
        from django_tenants.utils import schema_context

        from apps.rag.retrieval import MAX_K

        corpus, queries, train, test = _read(args.limit)
        workspace, owner = _workspace()
        with schema_context(workspace.schema_name):
            ingest = _ingest(workspace, owner, corpus)
            scores = _tune_and_score(workspace, queries, train, test)
            latency = _latency(workspace, queries, test)
        connection.close()
    report = {
        "command": common.command("benchmarks.rag.scifact"),
        "date": common.now(),
        "machine": started,
        "load_average_end": common.load_average(),
        "k": MAX_K,
        "ingest": ingest,
        "scores": scores,
        "latency": latency,
    }
    print(json.dumps(report, indent=2, default=str) if args.json else render(report))


if __name__ == "__main__":
    main()
