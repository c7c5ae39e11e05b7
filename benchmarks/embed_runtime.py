"""`python -m benchmarks.embed_runtime`: the offline embedding model on each runtime.

all-MiniLM-L6-v2 (apps/llm/core/embeddings.py) on sentence-transformers + torch fp32, on
onnxruntime fp32 and on onnxruntime int8 (the default), in this one process, one runtime after
the other. Texts: SciFact abstracts as "title\\n\\ntext" (the first `--texts`, read as
benchmarks/rag/scifact.py reads the corpus), which the model cuts at 256 word pieces, as the
RAG chunker's chunks are. Throughput is texts/s of one `encode` call of all the texts, per
batch size (texts per run of the model: sentence-transformers' batch_size on torch, the
session's batch on onnxruntime), best of `--repeat`. Latency is one query per call, the
SciFact test queries, p50 and p95. Cosine: each runtime's vectors against torch fp32's.
CPU ms per text (this process's CPU time, all threads) compares the runtimes' work with less
noise than wall time when other processes share the cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import common

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "scifact"
RUNTIMES = ("torch", "onnx-fp32", "onnx")
BATCHES = (1, 16, 32, 64)


def _read(texts: int, queries: int) -> tuple[list[str], list[str]]:
    with (DATA / "corpus.jsonl").open() as f:
        corpus = [json.loads(line) for line in f][:texts]
    with (DATA / "queries.jsonl").open() as f:
        asked = {q["_id"]: q["text"] for q in map(json.loads, f)}
    test = [line.split("\t")[0] for line in (DATA / "qrels" / "test.tsv").read_text().splitlines()]
    wanted = list(dict.fromkeys(q for q in test[1:] if q in asked))[:queries]
    return [f"{r['title']}\n\n{r['text']}" for r in corpus], [asked[q] for q in wanted]


def _measure(
    runtime: str, texts: list[str], queries: list[str], *, threads: int | None, repeat: int
) -> dict[str, Any]:
    from apps.llm.core.embeddings import make_encoder

    started = time.perf_counter()
    encoder = make_encoder(runtime, threads=threads)
    loaded = time.perf_counter() - started
    encoder.encode(texts[:8])  # warm-up: first-run allocations and kernels
    throughput: dict[int, float] = {}
    cpu_ms: dict[int, float] = {}
    vectors: Any = None
    pieces = 0
    for batch in BATCHES:
        encoder.batch_size = batch
        best, best_cpu = float("inf"), float("inf")
        for _ in range(repeat):
            started, cpu = time.perf_counter(), time.process_time()
            vectors, pieces = encoder.encode(texts)
            best = min(best, time.perf_counter() - started)
            best_cpu = min(best_cpu, time.process_time() - cpu)
        throughput[batch] = len(texts) / best
        cpu_ms[batch] = best_cpu * 1000 / len(texts)
    latencies = []
    for query in queries:
        started = time.perf_counter()
        encoder.encode([query])
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "runtime": encoder.runtime,
        "threads": threads,
        "load_seconds": loaded,
        "texts_per_second": throughput,
        "cpu_ms_per_text": cpu_ms,
        "query_p50_ms": common.percentile(latencies, 0.5),
        "query_p95_ms": common.percentile(latencies, 0.95),
        "mean_word_pieces": pieces / len(texts),
        "vectors": vectors,
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"{report['command']}  ({report['date']})",
        f"machine: {report['machine']}; load average at the end {report['load_average_end']}",
        f"{report['texts']} SciFact abstracts, {report['mean_word_pieces']:.0f} word pieces on "
        f"average (max 256); {report['queries']} test queries; threads: {report['threads']}",
        f"  {'runtime':<12}"
        + "".join(f"{f'batch {b}':>10}" for b in BATCHES)
        + f"{'query p50':>11}{'p95 ms':>8}{'cosine':>18}{'load s':>8}",
    ]
    for row in report["runtimes"]:
        rates = "".join(f"{row['texts_per_second'][b]:>10.1f}" for b in BATCHES)
        cosine = f"{row['cosine_min']:.4f}/{row['cosine_mean']:.4f}"
        lines.append(
            f"  {row['runtime']:<12}{rates}{row['query_p50_ms']:>11.1f}"
            f"{row['query_p95_ms']:>8.1f}{cosine:>18}{row['load_seconds']:>8.1f}"
        )
    lines.append("  (texts/s per batch size; cosine to torch fp32: min/mean over the texts)")
    lines.append(f"  {'CPU ms/text':<12}" + "".join(f"{f'batch {b}':>10}" for b in BATCHES))
    for row in report["runtimes"]:
        lines.append(
            f"  {row['runtime']:<12}"
            + "".join(f"{row['cpu_ms_per_text'][b]:>10.1f}" for b in BATCHES)
        )
    lines.append("  (CPU time of this process, all its threads, per text: less sensitive to load)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256, help="abstracts to embed (256)")
    parser.add_argument("--queries", type=int, default=200, help="queries timed one by one")
    parser.add_argument("--repeat", type=int, default=2, help="runs per batch size, best kept")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for every runtime (default: onnxruntime's ONNX_THREADS, torch's own)",
    )
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    started = common.machine()
    texts, queries = _read(args.texts, args.queries)
    rows = [
        _measure(runtime, texts, queries, threads=args.threads, repeat=args.repeat)
        for runtime in args.runtimes.split(",")
    ]
    reference = next((r["vectors"] for r in rows if r["runtime"] == "torch-fp32"), None)
    for row in rows:
        vectors = row.pop("vectors")
        cosines = (reference * vectors).sum(axis=1) if reference is not None else np.ones(1)
        row["cosine_min"], row["cosine_mean"] = float(cosines.min()), float(cosines.mean())
    report = {
        "command": common.command("benchmarks.embed_runtime"),
        "date": common.now(),
        "machine": started,
        "load_average_end": common.load_average(),
        "texts": len(texts),
        "queries": len(queries),
        "threads": args.threads or "defaults",
        "mean_word_pieces": rows[0]["mean_word_pieces"],
        "runtimes": rows,
    }
    print(json.dumps(report, indent=2, default=str) if args.json else render(report))


if __name__ == "__main__":
    main()
