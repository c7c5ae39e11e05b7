"""The BM25 leg: postings written with the chunks in the workspace's schema, corpus statistics
kept by the database, scores equal to a hand computation, postings gone with their chunks."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import redis
from django_tenants.utils import schema_context

from apps.rag.lexical import bm25_search, query_terms
from apps.rag.models import Chunk, Document, LexicalStats, Term
from apps.rag.services import document_add, document_delete, document_index
from apps.workspaces.models import User, Workspace
from tests.gateway_support import gateway_settings

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _offline_glue(fresh_redis: redis.Redis) -> Iterator[None]:
    with gateway_settings():
        yield


def index(workspace: Workspace, user: User, text: str, name: str) -> Document:
    document = document_add(user=user, data=text.encode(), filename=name, mime="text/plain")
    assert document_index(workspace=workspace, document_id=document.pk).status == "ready"
    return document


def postings(document: Document) -> dict[str, tuple[int, int]]:
    """term → (tf, dl) of the document's only chunk."""
    (chunk,) = document.chunks.all()
    return {t.term: (t.tf, t.dl) for t in Term.objects.filter(chunk=chunk)}


K1, B = 1.2, 0.75  # fixed here: the module's defaults are tuned and may move


def bm25(tf: int, dl: int, df: int, n: int, avgdl: float) -> float:
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * dl / avgdl))


def test_scores_equal_a_hand_computation_on_a_three_chunk_corpus(
    acme: Workspace, owner: User
) -> None:
    with schema_context(acme.schema_name):
        # given three one-chunk documents
        a = index(acme, owner, "Cats chase mice.", "a.txt")
        b = index(acme, owner, "Dogs chase cats, and cats purr.", "b.txt")
        c = index(acme, owner, "Birds sing.", "c.txt")

        # then the postings are stemmed lexemes without stop words, with tf and the length
        assert postings(a) == {"cat": (1, 3), "chase": (1, 3), "mice": (1, 3)}
        assert postings(b) == {"dog": (1, 5), "chase": (1, 5), "cat": (2, 5), "purr": (1, 5)}
        assert postings(c) == {"bird": (1, 2), "sing": (1, 2)}
        stats = LexicalStats.objects.get()
        assert (stats.chunks, stats.tokens) == (3, 10)
        assert query_terms("The cats were chasing!") == ["cat", "chase"]

        # when searching "cats chasing"
        found = bm25_search("cats chasing", limit=10, k1=K1, b=B)

        # then the scores are BM25's by hand: N = 3, avgdl = 10/3, df(cat) = df(chase) = 2
        n, avgdl = 3, 10 / 3
        expected_b = bm25(2, 5, 2, n, avgdl) + bm25(1, 5, 2, n, avgdl)
        expected_a = bm25(1, 3, 2, n, avgdl) + bm25(1, 3, 2, n, avgdl)
        # (a's two single hits in a short chunk beat b's "cats" twice in a longer one)
        assert expected_a / math.log(1.6) == pytest.approx(2.0853, abs=1e-4)
        assert expected_b / math.log(1.6) == pytest.approx(2.0357, abs=1e-4)
        scores = {s.chunk_id: s.score for s in found}
        assert [s.chunk_id for s in found] == [a.chunks.get().pk, b.chunks.get().pk]
        assert scores[a.chunks.get().pk] == pytest.approx(expected_a, rel=1e-9)
        assert scores[b.chunks.get().pk] == pytest.approx(expected_b, rel=1e-9)


def test_an_exact_rare_term_ranks_first(acme: Workspace, owner: User) -> None:
    with schema_context(acme.schema_name):
        for i in range(6):
            index(acme, owner, f"The service restarts after an error on node {i}.", f"n{i}.txt")
        rare = index(acme, owner, "Error XK-4471 means the service lost its lease.", "x.txt")

        found = bm25_search("service error xk-4471", limit=3)

        assert found[0].chunk_id == rare.chunks.get().pk


def test_a_query_of_stop_words_only_matches_nothing(acme: Workspace, owner: User) -> None:
    with schema_context(acme.schema_name):
        index(acme, owner, "The cat is on the mat.", "mat.txt")
        assert query_terms("the of and is") == []
        assert bm25_search("the of and is", limit=5) == []


def test_postings_and_statistics_follow_reindex_and_delete(acme: Workspace, owner: User) -> None:
    with schema_context(acme.schema_name):
        kept = index(acme, owner, "Ocelots sleep in trees.", "kept.txt")
        document = index(acme, owner, "Backups are kept for thirty days.", "backup.txt")
        old_chunk = document.chunks.get().pk
        assert bm25_search("thirty", limit=5)

        # when the file changes and the document is indexed again
        document.file.data = b"Backups are kept for ninety days, then archived."
        document.file.save()
        Document.objects.filter(pk=document.pk).update(status=Document.Status.QUEUED)
        document_index(workspace=acme, document_id=document.pk)

        # then the old postings went with the old chunk, and the new text is searchable
        assert not Term.objects.filter(chunk_id=old_chunk).exists()
        assert bm25_search("thirty", limit=5) == []
        new_chunk = document.chunks.get().pk
        assert [s.chunk_id for s in bm25_search("ninety archived", limit=5)] == [new_chunk]
        stats = LexicalStats.objects.get()
        assert (stats.chunks, stats.tokens) == (
            2,
            3 + 5,
        )  # ocelot sleep tree | backup kept ninety day archiv

        # when the document is deleted
        document_delete(document=document)

        # then it is never returned, and the statistics count only what is left
        assert not Term.objects.filter(chunk_id=new_chunk).exists()
        assert bm25_search("backups ninety", limit=5) == []
        stats = LexicalStats.objects.get()
        assert (stats.chunks, stats.tokens) == (1, 3)
        assert [s.chunk_id for s in bm25_search("ocelot", limit=5)] == [kept.chunks.get().pk]
        assert not Chunk.objects.filter(document_id=document.pk).exists()
