"""Offline embeddings: the bundled all-MiniLM-L6-v2, loaded once, never downloading; unit
384-d vectors in input order, meaning-aware, with the model name and usage returned."""

from __future__ import annotations

import asyncio
import math
import os
import threading

import pytest

from apps.llm.core import embeddings
from apps.llm.core.errors import ProviderError
from apps.llm.core.providers.base import Embeddings
from apps.llm.core.providers.local import LocalProvider
from apps.llm.core.types import Usage


@pytest.fixture(scope="module", autouse=True)
def model():
    """Loading takes seconds: once for the whole module."""
    return embeddings.load_model()


def _cosine(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_nothing_is_fetched_from_the_hub():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"


@pytest.mark.asyncio
async def test_vectors_are_384_dimensional_and_unit_length():
    result = await embeddings.embed(["The invoice is overdue.", "Le chat dort."])

    assert result.model == "all-MiniLM-L6-v2"
    assert [len(vector) for vector in result.vectors] == [384, 384]
    for vector in result.vectors:
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, abs_tol=1e-4)


@pytest.mark.asyncio
async def test_similar_sentences_are_closer_than_unrelated_ones():
    # given two paraphrases and an unrelated sentence
    texts = [
        "How do I reset my password?",
        "I forgot my password and need to change it.",
        "The recipe needs two cups of flour.",
    ]

    # when
    question, paraphrase, unrelated = (await embeddings.embed(texts)).vectors

    # then
    assert _cosine(question, paraphrase) > _cosine(question, unrelated) + 0.3


@pytest.mark.asyncio
async def test_a_batch_larger_than_the_encode_batch_keeps_its_order():
    # given more texts than one encode batch holds
    texts = [f"Ticket {i}: the export to CSV fails for workspace number {i}." for i in range(40)]

    # when
    together = await embeddings.embed(texts)
    alone = await embeddings.embed([texts[37]])

    # then
    assert len(together.vectors) == 40
    assert _cosine(together.vectors[37], alone.vectors[0]) > 0.999


@pytest.mark.asyncio
async def test_usage_counts_the_word_pieces_read():
    short = await embeddings.embed(["hello"])
    longer = await embeddings.embed(["hello", "a much longer sentence about quarterly revenue"])

    # "hello" is one word piece between the model's [CLS] and [SEP]
    assert short.usage.input_tokens == 3
    assert longer.usage.input_tokens > short.usage.input_tokens + 5
    assert longer.usage.output_tokens == 0


@pytest.mark.asyncio
async def test_no_texts_give_no_vectors():
    assert await embeddings.embed([]) == Embeddings(
        vectors=(), model="all-MiniLM-L6-v2", usage=Usage()
    )


def test_concurrent_callers_share_one_model(model):
    # given several threads asking for the model at once
    seen = []
    threads = [
        threading.Thread(target=lambda: seen.append(embeddings.load_model())) for _ in range(6)
    ]

    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then
    assert all(loaded is model for loaded in seen)


@pytest.mark.asyncio
async def test_the_event_loop_keeps_running_while_a_batch_encodes():
    # given a ticker on the loop
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    ticker = asyncio.create_task(tick())

    # when a large batch encodes
    await embeddings.embed([f"Document chunk {i} about retention policies." for i in range(64)])
    ticker.cancel()

    # then the loop was not blocked meanwhile
    assert ticks > 5


@pytest.mark.asyncio
async def test_the_local_provider_embeds_with_the_same_model():
    provider = LocalProvider()

    through_provider = await provider.embed(["hello world"], model="all-MiniLM-L6-v2", timeout=30)
    direct = await embeddings.embed(["hello world"])

    assert through_provider == direct


@pytest.mark.asyncio
async def test_a_slow_embedding_times_out_as_retryable(monkeypatch):
    # given an embedding that takes longer than the call allows
    async def slow(texts):
        await asyncio.sleep(1)

    monkeypatch.setattr(embeddings, "embed", slow)

    # when / then
    with pytest.raises(ProviderError) as raised:
        await LocalProvider().embed(["hello"], model="all-MiniLM-L6-v2", timeout=0.05)
    assert raised.value.retryable is True
    assert raised.value.kind == "timeout"
