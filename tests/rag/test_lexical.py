"""The BM25 leg: postings written with the chunks in the workspace's schema, corpus statistics
kept by the database, scores equal to a hand computation, postings gone with their chunks; the
bounded scan answers exactly as the exact one."""

from __future__ import annotations

import math
from collections.abc import Iterator
from importlib import import_module

import pytest
import redis
from django.db import connection
from django_tenants.utils import schema_context

from apps.rag import lexical
from apps.rag.lexical import bm25_search, query_terms
from apps.rag.models import Chunk, Document, LexicalStats, Term, TermDF
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


def _df_from_postings() -> dict[str, int]:
    counts: dict[str, int] = {}
    for term in Term.objects.values_list("term", flat=True):
        counts[term] = counts.get(term, 0) + 1
    return counts


def test_document_frequencies_follow_index_reindex_and_delete(acme: Workspace, owner: User) -> None:
    with schema_context(acme.schema_name):
        index(acme, owner, "Cats chase mice.", "a.txt")
        b = index(acme, owner, "Dogs chase cats, and cats purr.", "b.txt")
        assert {t.term: t.df for t in TermDF.objects.filter(df__gt=0)} == _df_from_postings()
        assert TermDF.objects.get(term="cat").df == 2

        document_delete(document=b)

        assert {t.term: t.df for t in TermDF.objects.filter(df__gt=0)} == _df_from_postings()
        assert TermDF.objects.get(term="dog").df == 0  # kept at 0, never read


ANIMALS = [
    "cat cat dog",
    "cat dog bird",
    "cat fish",
    "dog dog dog fish",
    "cat bird bird",
    "dog fish fish fish bird",
    "cat",
    "cat cat cat cat dog dog bird fish",
    "bird dog",
    "fish fish cat",
    "dog cat bird fish owl",
    "owl cat",
    "cat dog owl owl",
    "fish",
    "bird bird bird cat dog",
    "cat dog fish bird owl mouse",
    "mouse cat",
    "dog mouse mouse",
]


@pytest.mark.parametrize("cap", [1, 2, 3, 5, 100])
def test_the_bounded_scan_is_exact_when_certified_and_scores_what_it_returns_exactly(
    acme: Workspace, owner: User, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a corpus whose terms have more postings than the scan reads per term
    monkeypatch.setattr(lexical, "CAP", cap)
    monkeypatch.setattr(lexical, "RESCORE_MIN", 2)
    with schema_context(acme.schema_name):
        for i, text in enumerate(ANIMALS):
            index(acme, owner, text, f"{i}.txt")
        certified = 0
        for query in ("cat dog", "cat fish owl", "bird bird mouse", "dog owl", "fish"):
            everything = {s.chunk_id: s.score for s in bm25_search(query, limit=50, exact=True)}
            for limit in (1, 3, 5):
                # when both scans answer
                exact = bm25_search(query, limit=limit, exact=True)
                params = {
                    "terms": query_terms(query),
                    "k1": lexical.K1,
                    "b": lexical.B,
                    "limit": limit,
                    "collections": None,
                    "documents": None,
                }
                bounded = lexical.bounded_search(params, filtered=False)
                # then every chunk it returns carries its exact BM25 score, best first
                assert [s.score for s in bounded.hits] == pytest.approx(
                    [everything[s.chunk_id] for s in bounded.hits]
                )
                assert bm25_search(query, limit=limit) == bounded.hits
                # and a certified answer is the exact ranking
                if bounded.certain:
                    certified += 1
                    assert [s.chunk_id for s in bounded.hits] == [s.chunk_id for s in exact]
        # the certificate holds once enough is read, always when nothing is cut
        assert certified == {1: 0, 2: 0, 3: 1, 5: 6, 100: 15}[cap]


def test_the_impact_index_orders_by_the_expression_searches_use(acme: Workspace) -> None:
    migration = import_module("apps.rag.migrations.0005_lexical_impact")
    assert lexical.IMPACT_SQL.replace("t.", "") == migration.IMPACT
    with schema_context(acme.schema_name), connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s"
            " AND indexname = 'rag_term_impact'",
            [acme.schema_name],
        )
        (definition,) = cursor.fetchone()
    assert "INCLUDE (chunk_id, tf, dl)" in definition
