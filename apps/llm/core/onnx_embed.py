"""A sentence-transformers model on onnxruntime: exported from torch and quantised once, cached.

The pipeline is sentence-transformers' own for all-MiniLM-L6-v2 (its modules.json: Transformer,
mean Pooling, Normalize): word pieces from the model's tokenizer.json, at most `MAX_PIECES`,
each batch padded to its longest text; the transformer on onnxruntime; the token vectors
averaged over the attention mask; the mean scaled to unit length.

The ONNX files live in `cache_dir()`, named by the weights' sha256 and `RECIPE`, so other
weights or another recipe never reuse a stale file. They are written to a temporary name and
renamed, under a file lock, so concurrent processes (pytest workers, Celery's prefork children)
export once and never read half a file. Nothing is downloaded: torch exports the weights on disk.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

MAX_PIECES = 256  # sentence_bert_config.json's max_seq_length
# Bumped whenever the export or the quantisation below changes: the cached file's name holds it.
RECIPE = "1"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Matrix = npt.NDArray[np.float32]


def cache_dir() -> Path:
    """Where exported models are kept: `EMBED_ONNX_CACHE`, else the user's cache directory.

    A per-user cache rather than the checkout's `.data/`: `make run`, the test sessions, the
    benchmarks and CI's fresh clone on the same machine share one export.
    """
    chosen = os.environ.get("EMBED_ONNX_CACHE")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aisaas" / "onnx"


def model_file(
    model_dir: Path, *, name: str, quantised: bool = True, cache: Path | None = None
) -> Path:
    """The ONNX file of the sentence-transformers model `name` in `model_dir`, int8 unless
    `quantised` is false; exported (and quantised) on the first call on this machine.

    Raises OSError when the cache cannot be written, ImportError without onnx or torch.
    """
    cache = cache or cache_dir()
    stem = f"{name}-{_weights_key(model_dir)}-r{RECIPE}"
    fp32 = cache / f"{stem}-fp32.onnx"
    target = cache / f"{stem}-int8.onnx" if quantised else fp32
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".export.lock"):
        if not fp32.exists():
            log.info("Exporting %s to ONNX in %s (once per machine)", name, cache)
            with _written(fp32) as partial:
                _export(model_dir, partial)
        if quantised and not target.exists():
            with _written(target) as partial:
                _quantise(fp32, partial)
    return target


class OnnxEncoder:
    """Unit-length sentence vectors from an ONNX file of the model, on the CPU.

    `threads` is the session's intra-op thread count: how many cores one run may use;
    `runtime` names it in reports (`onnx-int8`, `onnx-fp32`). `batch_size` texts go through
    the session at a time. One by default: int8 activations are quantised with one scale per
    run, so a text batched with others gets a slightly different vector (cosine ~0.99) than
    alone, while one text per run always gets the same one; and on these CPUs it is also the
    fastest (no padding; 34 ms of CPU per SciFact abstract against 45 ms in batches of 32).
    """

    def __init__(
        self, model_dir: Path, onnx_file: Path, *, threads: int, runtime: str, batch_size: int = 1
    ) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.runtime = runtime
        self.batch_size = batch_size
        self.onnx_file = onnx_file
        self.tokenizer: Tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # The file says "truncate at 128, pad every text to 128"; sentence-transformers reads
        # 256 pieces and pads a batch to its longest text, and so do we.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_PIECES)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        # Threads that spin between batches burn a core PostgreSQL or a web worker could use.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: no graph-optimisation chatter in logs
        self.session: onnxruntime.InferenceSession = onnxruntime.InferenceSession(
            str(onnx_file), options, providers=["CPUExecutionProvider"]
        )
        self.dimensions = int(self.session.get_outputs()[0].shape[2])

    def encode(self, texts: Sequence[str]) -> tuple[Matrix, int]:
        """Blocking: one unit vector per text, in order, and the word pieces read."""
        pieces = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        # Longest first, as sentence-transformers does: each batch pads to similar lengths.
        order = sorted(range(len(pieces)), key=lambda i: -len(pieces[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            vectors[rows] = self._run([pieces[i] for i in rows])
        return vectors, sum(len(ids) for ids in pieces)

    def _run(self, pieces: list[list[int]]) -> Matrix:
        longest = max(len(ids) for ids in pieces)
        input_ids = np.zeros((len(pieces), longest), dtype=np.int64)
        mask = np.zeros((len(pieces), longest), dtype=np.int64)
        for row, ids in enumerate(pieces):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = dict(zip(_INPUTS, (input_ids, mask, np.zeros_like(input_ids)), strict=True))
        (tokens,) = self.session.run(None, feeds)
        weights = mask.astype(np.float32)
        summed = np.einsum("btd,bt->bd", tokens, weights)
        means = summed / np.clip(weights.sum(axis=1, keepdims=True), 1e-9, None)
        norms = np.clip(np.linalg.norm(means, axis=1, keepdims=True), 1e-12, None)
        return np.asarray(means / norms, dtype=np.float32)


def _weights_key(model_dir: Path) -> str:
    with (model_dir / "model.safetensors").open("rb") as weights:
        return hashlib.file_digest(weights, "sha256").hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock between processes, released when the holder exits, even killed."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _written(target: Path) -> Iterator[Path]:
    """A temporary path beside `target`, renamed onto it once written; removed on failure."""
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        os.chmod(partial, 0o644)  # mkstemp's 0600 would hide it from other users of the cache
        os.replace(partial, target)
    finally:
        with suppress(FileNotFoundError):
            partial.unlink()


def _export(model_dir: Path, out: Path) -> None:
    """torch's TorchScript exporter (the dynamo one needs onnxscript), batch and sequence
    dynamic, output the token vectors: pooling stays in numpy, outside the quantiser's reach."""
    import torch
    from transformers import AutoModel

    class TokenVectors(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            output = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            hidden: torch.Tensor = output.last_hidden_state
            return hidden

    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    sample = torch.ones((2, 16), dtype=torch.int64)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*_INPUTS, "token_vectors")}
    # The tracer's warnings are about Python branches on shapes that are fixed for this model.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TokenVectors(model),
            (sample, sample, torch.zeros_like(sample)),
            str(out),
            dynamo=False,
            input_names=list(_INPUTS),
            output_names=["token_vectors"],
            dynamic_axes=axes,
            opset_version=17,
        )


def _quantise(fp32: Path, out: Path) -> None:
    """int8 weights per output channel, MatMul only; activations quantised per batch at run
    time. Per-channel keeps the cosine to fp32 at ~0.99 (per-tensor, the default: 0.90-0.94);
    the activation-by-activation MatMuls of attention stay fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    hint = _DropMessage("Please consider to run pre-processing")  # logged on the root logger
    logging.getLogger().addFilter(hint)
    try:
        quantize_dynamic(
            fp32,
            out,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
        )
    finally:
        logging.getLogger().removeFilter(hint)


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)
