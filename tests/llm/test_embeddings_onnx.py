"""The default embedding runtime, all-MiniLM-L6-v2 in int8 on onnxruntime, against the
reference, sentence-transformers on torch fp32: the same vectors within quantisation noise,
the same word pieces, the same neighbours; and the ONNX file made once, whole, offline."""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from apps.llm.core import embeddings, onnx_embed

ABSTRACT = (
    "Alterations of the architecture of cerebral white matter in the developing human brain "
    "can affect cortical development and result in functional disabilities. A line scan "
    "diffusion-weighted magnetic resonance imaging (MRI) sequence with diffusion tensor "
    "analysis was applied to measure the apparent diffusion coefficient, to calculate "
    "relative anisotropy, and to delineate three-dimensional fiber architecture in cerebral "
    "white matter in preterm (n = 17) and full-term infants (n = 7). To assess effects of "
    "prematurity on cerebral white matter development, early gestation preterm infants "
    "(n = 10) were studied a second time at term. In the central white matter the mean "
    "apparent diffusion coefficient at 28 wk was high, 1.8 microm2/ms, and decreased toward "
    "term to 1.2 microm2/ms."
)

# Questions, statements, other languages, code, numbers, a heading path, a long abstract and
# one far past 256 word pieces: what users, documents and agents send.
TEXTS = [
    "How do I reset my password?",
    "I forgot my password and need to change it.",
    "The recipe needs two cups of flour.",
    "The invoice is overdue.",
    "Our quarterly revenue grew 12% year over year, driven by enterprise renewals.",
    "Can I export the workspace's documents as a ZIP file?",
    "Refunds are issued to the original payment method within 5-10 business days.",
    "Le chat dort sur le canapé.",
    "Wie spät ist es in Berlin?",
    "¿Dónde está la estación de tren más cercana?",
    "def add(a: int, b: int) -> int:\n    return a + b",
    "SELECT id, email FROM users WHERE created_at > now() - interval '7 days';",
    "Error 502: upstream timed out while reading response header from the provider.",
    "Vitamin D supplementation reduces the risk of fractures in older adults.",
    "0-dimensional biomaterials show inductive properties.",
    "Security policy > Access control\n\nOnly workspace owners can rotate API keys.",
    "The mitochondria is the powerhouse of the cell.",
    "Please cancel my subscription at the end of the billing period.",
    ABSTRACT,
    " ".join([ABSTRACT] * 4),
]


@pytest.fixture(scope="module")
def torch_fp32() -> embeddings.Encoder:
    return embeddings.make_encoder("torch")


@pytest.fixture(scope="module")
def onnx_int8() -> embeddings.Encoder:
    """Exported and quantised on the first run on this machine (~15 s), then read from the
    cache (~1 s)."""
    return embeddings.make_encoder("onnx")


def test_int8_vectors_are_within_quantisation_noise_of_torch_fp32(torch_fp32, onnx_int8):
    # when both runtimes embed the same texts
    reference, _ = torch_fp32.encode(TEXTS)
    vectors, _ = onnx_int8.encode(TEXTS)

    # then each pair is close, and on average closer still
    cosines = (reference * vectors).sum(axis=1)
    assert cosines.min() >= 0.98, dict(zip(TEXTS, cosines.round(4), strict=True))
    assert cosines.mean() >= 0.99
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_int8_finds_the_same_nearest_neighbours(torch_fp32, onnx_int8):
    # given each text as a query against all the others
    reference, _ = torch_fp32.encode(TEXTS)
    vectors, _ = onnx_int8.encode(TEXTS)

    def ranked(matrix: np.ndarray) -> np.ndarray:
        scores = matrix @ matrix.T
        np.fill_diagonal(scores, -1.0)
        return scores

    # then wherever fp32 has a clear nearest neighbour (ahead by 0.05), int8 finds it too
    fp32_scores, int8_scores = ranked(reference), ranked(vectors)
    top2 = np.sort(fp32_scores, axis=1)[:, -2:]
    clear = np.flatnonzero(top2[:, 1] - top2[:, 0] >= 0.05)
    assert len(clear) >= 5
    assert (int8_scores[clear].argmax(axis=1) == fp32_scores[clear].argmax(axis=1)).all()


def test_word_pieces_are_counted_and_truncated_as_sentence_transformers_does(torch_fp32, onnx_int8):
    # the tokenizer.json on disk says 128; the model reads 256
    assert onnx_int8.encode(TEXTS)[1] == torch_fp32.encode(TEXTS)[1]
    assert onnx_int8.encode([TEXTS[-1]])[1] == onnx_embed.MAX_PIECES


def test_a_text_gets_the_same_vector_alone_or_among_others(onnx_int8):
    together, _ = onnx_int8.encode(TEXTS)
    alone, _ = onnx_int8.encode([TEXTS[3]])

    assert np.array_equal(together[3], alone[0])


def test_the_default_runtime_is_onnx_int8(monkeypatch):
    monkeypatch.delenv("EMBED_RUNTIME", raising=False)
    monkeypatch.setattr(embeddings, "_model", None)

    assert embeddings.load_model().runtime == "onnx-int8"


def test_embed_runtime_torch_selects_sentence_transformers(monkeypatch):
    monkeypatch.setenv("EMBED_RUNTIME", "torch")
    monkeypatch.setattr(embeddings, "_model", None)

    assert embeddings.load_model().runtime == "torch-fp32"


def test_an_unknown_runtime_is_refused(monkeypatch):
    monkeypatch.setenv("EMBED_RUNTIME", "tensorflow")
    monkeypatch.setattr(embeddings, "_model", None)

    with pytest.raises(ValueError, match="EMBED_RUNTIME must be one of"):
        embeddings.load_model()


def test_without_a_writable_cache_torch_answers_and_the_log_says_why(monkeypatch, caplog):
    # given an ONNX cache that cannot be written
    def unwritable(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.delenv("EMBED_RUNTIME", raising=False)
    monkeypatch.setattr(embeddings, "_model", None)
    monkeypatch.setattr(onnx_embed, "model_file", unwritable)

    # when the model loads
    with caplog.at_level(logging.WARNING, logger=embeddings.__name__):
        model = embeddings.load_model()

    # then torch embeds, and the log names the cause
    assert model.runtime == "torch-fp32"
    assert "read-only file system" in caplog.text


def _fake_export(calls: list[str], *, fail: bool = False):
    def export(model_dir: Path, out: Path) -> None:
        calls.append("export")
        out.write_bytes(b"half a file")
        if fail:
            raise RuntimeError("the exporter crashed")
        out.write_bytes(b"fp32 model")

    return export


def _fake_quantise(calls: list[str]):
    def quantise(fp32: Path, out: Path) -> None:
        calls.append("quantise")
        out.write_bytes(fp32.read_bytes().replace(b"fp32", b"int8"))

    return quantise


def test_concurrent_callers_export_and_quantise_once(monkeypatch, tmp_path):
    # given several callers at once and a cache without the model
    calls: list[str] = []
    monkeypatch.setattr(onnx_embed, "_export", _fake_export(calls))
    monkeypatch.setattr(onnx_embed, "_quantise", _fake_quantise(calls))
    found: list[Path] = []

    def call() -> None:
        found.append(onnx_embed.model_file(embeddings.model_dir(), name="m", cache=tmp_path / "c"))

    threads = [threading.Thread(target=call) for _ in range(6)]

    # when they all ask for the int8 file
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then it was made once, whole, and every caller got it; no temporary file is left
    assert calls == ["export", "quantise"]
    assert len(set(found)) == 1
    assert found[0].read_bytes() == b"int8 model"
    assert sorted(p.name for p in found[0].parent.iterdir() if p.suffix == ".tmp") == []


def test_a_failed_export_leaves_nothing_to_read(monkeypatch, tmp_path):
    calls: list[str] = []
    monkeypatch.setattr(onnx_embed, "_export", _fake_export(calls, fail=True))
    cache = tmp_path / "c"

    with pytest.raises(RuntimeError, match="the exporter crashed"):
        onnx_embed.model_file(embeddings.model_dir(), name="m", cache=cache)

    assert [p.name for p in cache.iterdir() if not p.name.startswith(".export")] == []


def test_the_cached_file_is_named_by_the_weights_and_the_recipe(monkeypatch, tmp_path):
    calls: list[str] = []
    monkeypatch.setattr(onnx_embed, "_export", _fake_export(calls))

    path = onnx_embed.model_file(embeddings.model_dir(), name="m", quantised=False, cache=tmp_path)

    weights = (embeddings.model_dir() / "model.safetensors").read_bytes()
    assert (
        path.name == f"m-{hashlib.sha256(weights).hexdigest()[:16]}-r{onnx_embed.RECIPE}-fp32.onnx"
    )
    assert calls == ["export"]


def test_the_cache_lives_where_the_environment_says(monkeypatch, tmp_path):
    monkeypatch.delenv("EMBED_ONNX_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert onnx_embed.cache_dir() == tmp_path / "aisaas" / "onnx"

    monkeypatch.setenv("EMBED_ONNX_CACHE", str(tmp_path / "elsewhere"))
    assert onnx_embed.cache_dir() == tmp_path / "elsewhere"
