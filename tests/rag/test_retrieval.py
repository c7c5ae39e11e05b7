"""`search_chunks`: BM25, dense and fused retrieval in the workspace's own schema, with the
query embedded through the gateway (metered as "rag.search")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from apps.common.errors import ApplicationError
from apps.rag.lexical import Scored
from apps.rag.models import Collection, Document
from apps.rag.retrieval import (
    MAX_QUERY_CHARS,
    SEARCH_FEATURE,
    Mode,
    fuse_convex,
    fuse_rrf,
    search_chunks,
)
from apps.rag.services import document_add, document_delete, document_index
from apps.traces.models import LlmCallLog
from apps.traces.services import call_records_flush
from apps.workspaces.models import User, Workspace
from tests.gateway_support import gateway_settings

pytestmark = pytest.mark.django_db

# A tiny labelled set: each query's relevant document. Two need the exact code (BM25's
# strength), two are paraphrases sharing no word with their answer (the dense leg's).
CORPUS = {
    "lunch": "The cafeteria serves lunch from noon until two in the afternoon.",
    "parking": "Visitors park in the north garage; the south lot is for staff.",
    "xk": "Error XK-4471 means the replica lost its lease; restart the node.",
    "xj": "Error XJ-9020 means the disk is full; delete old snapshots.",
    "vpn": "Remote employees connect through the VPN before opening the wiki.",
    "backups": "Backups run nightly at 02:00 UTC and are kept for 35 days.",
}
LABELLED = {
    "what does XK-4471 mean": "xk",
    "XJ-9020 fix": "xj",
    "when can I get a midday meal": "lunch",
    "where do guests leave their cars": "parking",
}


@pytest.fixture(autouse=True)
def _offline_glue(fresh_redis: redis.Redis) -> Iterator[None]:
    with gateway_settings():
        yield


def index(
    workspace: Workspace, user: User, name: str, text: str, collection: Collection | None = None
) -> Document:
    document = document_add(
        user=user,
        data=text.encode(),
        filename=f"{name}.txt",
        mime="text/plain",
        collection=collection,
    )
    assert document_index(workspace=workspace, document_id=document.pk).status == "ready"
    return document


def corpus(workspace: Workspace, user: User) -> dict[str, Document]:
    return {name: index(workspace, user, name, text) for name, text in CORPUS.items()}


def test_a_hit_carries_its_chunk_document_and_the_scores_of_each_leg(
    acme: Workspace, owner: User
) -> None:
    with schema_context(acme.schema_name):
        docs = corpus(acme, owner)
        (hit, *_) = search_chunks(workspace=acme, query="error XK-4471 lease", k=3)
        chunk = docs["xk"].chunks.get()
        assert (hit.chunk_id, hit.document_id, hit.title) == (chunk.pk, docs["xk"].pk, "xk.txt")
        assert (hit.ordinal, hit.page, hit.heading_path) == (0, None, [])
        assert hit.text == CORPUS["xk"]
        assert hit.lexical_score is not None
        assert hit.lexical_score > 0
        assert hit.dense_score is not None
        assert 0 < hit.dense_score <= 1
        assert hit.score > 0
    # and the query's embedding was a metered call of the workspace
    call_records_flush()
    assert LlmCallLog.objects.filter(workspace_id=acme.pk, feature=SEARCH_FEATURE).exists()


def test_dense_finds_a_paraphrase_that_shares_no_word(acme: Workspace, owner: User) -> None:
    with schema_context(acme.schema_name):
        docs = corpus(acme, owner)
        query = "when can I get a midday meal"

        assert search_chunks(workspace=acme, query=query, mode="lexical") == []
        dense = search_chunks(workspace=acme, query=query, mode="dense", k=2)

        assert dense[0].document_id == docs["lunch"].pk
        assert dense[0].lexical_score is None
        assert dense[0].dense_score == dense[0].score


def reciprocal_rank(workspace: Workspace, mode: Mode, query: str, relevant: int) -> float:
    found = [h.document_id for h in search_chunks(workspace=workspace, query=query, mode=mode)]
    return 1 / (found.index(relevant) + 1) if relevant in found else 0.0


@pytest.mark.parametrize("fusion", ["rrf", "convex"])
def test_hybrid_equals_or_beats_each_leg_on_a_labelled_set(
    acme: Workspace, owner: User, fusion: str
) -> None:
    with schema_context(acme.schema_name):
        docs = corpus(acme, owner)
        mrr: dict[str, float] = {}
        for mode in ("lexical", "dense", "hybrid"):
            total = 0.0
            for query, name in LABELLED.items():
                if mode == "hybrid":
                    found = search_chunks(workspace=acme, query=query, fusion=fusion)  # type: ignore[arg-type]
                    ids = [h.document_id for h in found]
                    total += 1 / (ids.index(docs[name].pk) + 1) if docs[name].pk in ids else 0
                else:
                    total += reciprocal_rank(acme, mode, query, docs[name].pk)
            mrr[mode] = total / len(LABELLED)
    assert mrr["hybrid"] >= mrr["lexical"]
    assert mrr["hybrid"] >= mrr["dense"]
    assert mrr["hybrid"] == 1.0, mrr


def test_filters_keep_to_the_collections_and_documents_asked(acme: Workspace, owner: User) -> None:
    with schema_context(acme.schema_name):
        other = Collection.objects.create(name="Ops")
        default = corpus(acme, owner)
        ops = index(acme, owner, "ops", "Error XK-4471 in ops: page the on-call.", collection=other)
        query = "error XK-4471"
        for mode in ("lexical", "dense", "hybrid"):
            in_ops = search_chunks(
                workspace=acme, query=query, mode=mode, collection_ids=[other.pk]
            )
            assert {h.document_id for h in in_ops} == {ops.pk}, mode
            one = search_chunks(
                workspace=acme, query=query, mode=mode, document_ids=[default["xj"].pk]
            )
            assert {h.document_id for h in one} == {default["xj"].pk}, mode
            assert search_chunks(workspace=acme, query=query, mode=mode, document_ids=[]) == []


def test_a_deleted_document_is_never_returned(acme: Workspace, owner: User) -> None:
    with schema_context(acme.schema_name):
        docs = corpus(acme, owner)
        document_delete(document=docs["xk"])
        for mode in ("lexical", "dense", "hybrid"):
            found = search_chunks(workspace=acme, query="error XK-4471", mode=mode)
            assert docs["xk"].pk not in {h.document_id for h in found}, mode


@pytest.mark.parametrize("status", ["queued", "parsing", "embedding", "paused", "failed"])
def test_only_ready_documents_are_searched(acme: Workspace, owner: User, status: str) -> None:
    # a document being re-indexed (or that failed or paused) keeps old or partial chunks: none
    # of them may reach an answer until it is ready again
    with schema_context(acme.schema_name):
        docs = corpus(acme, owner)
        Document.objects.filter(pk=docs["xk"].pk).update(status=status)
        collection = [docs["xk"].collection_id]
        for mode in ("lexical", "dense", "hybrid"):
            found = search_chunks(workspace=acme, query="error XK-4471", mode=mode)
            assert docs["xk"].pk not in {h.document_id for h in found}, mode
            # nor when a filter names its collection (another SQL path of each leg)
            found = search_chunks(
                workspace=acme, query="error XK-4471", mode=mode, collection_ids=collection
            )
            assert docs["xk"].pk not in {h.document_id for h in found}, mode


def test_another_workspace_finds_nothing_of_acme(
    acme: Workspace, globex: Workspace, owner: User
) -> None:
    with schema_context(acme.schema_name):
        corpus(acme, owner)
        assert search_chunks(workspace=acme, query="error XK-4471")
        # the workspace argument decides the schema, even called from inside acme's
        assert search_chunks(workspace=globex, query="error XK-4471") == []
    with schema_context(globex.schema_name):
        for mode in ("lexical", "dense", "hybrid"):
            assert search_chunks(workspace=globex, query="error XK-4471", mode=mode) == []


@pytest.mark.parametrize(
    ("query", "options", "field"),
    [
        ("", {}, "query"),
        ("  \n\t ", {}, "query"),
        ("backups", {"k": 0}, "k"),
        ("backups", {"mode": "fuzzy"}, "mode"),
    ],
)
def test_bad_input_is_refused_clearly(
    acme: Workspace, query: str, options: dict[str, object], field: str
) -> None:
    with pytest.raises(ApplicationError) as refused:
        search_chunks(workspace=acme, query=query, **options)  # type: ignore[arg-type]
    assert refused.value.field == field
    assert refused.value.message


def test_a_very_long_query_is_capped_not_refused(acme: Workspace, owner: User) -> None:
    with schema_context(acme.schema_name):
        docs = corpus(acme, owner)
        query = "error XK-4471 " + "lease " * 20_000
        found = search_chunks(workspace=acme, query=query, k=500)
        assert found[0].document_id == docs["xk"].pk
        assert len(found) <= 50
    call_records_flush()
    call = LlmCallLog.objects.filter(workspace_id=acme.pk, feature=SEARCH_FEATURE).latest("pk")
    assert call.input_tokens <= MAX_QUERY_CHARS


def test_fusions_rank_what_both_legs_agree_on_first() -> None:
    lexical = [Scored(1, 9.0), Scored(2, 5.0), Scored(3, 1.0)]
    dense = [Scored(2, 0.9), Scored(4, 0.8), Scored(1, 0.1)]
    assert fuse_rrf([lexical, dense], k=60)[0][0] in (1, 2)
    assert fuse_rrf([lexical, dense], k=60) == sorted(
        fuse_rrf([lexical, dense], k=60), key=lambda item: -item[1]
    )
    rrf = dict(fuse_rrf([lexical, dense], k=60))
    assert rrf[2] == pytest.approx(1 / 62 + 1 / 61)
    convex = dict(fuse_convex(lexical, dense, dense_weight=0.5))
    # min-max per leg: lexical 1 → 1.0, 2 → 0.5; dense 2 → 1.0, 1 → 0.0
    assert convex[2] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    assert convex[1] == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)
    assert convex[3] == pytest.approx(0.0)


def test_the_dense_query_uses_the_hnsw_index_of_its_size(acme: Workspace, owner: User) -> None:
    with schema_context(acme.schema_name):
        corpus(acme, owner)
        with CaptureQueriesContext(connection) as captured:
            search_chunks(workspace=acme, query="midday meal", mode="dense", collection_ids=[1])
        (sql,) = [q["sql"] for q in captured.captured_queries if "<=>" in q["sql"]]
        with connection.cursor() as cursor:
            # A handful of rows: with table statistics (autovacuum analyzes rag_document once
            # other tests have written to it) a nested loop and a sort are cheapest. Without a
            # sort or a sequential scan, only an index that serves the ORDER BY can answer.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "rag_chunk_hnsw_384" in plan
