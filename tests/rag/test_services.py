"""Indexing documents: bytes in, chunks with vectors out, through the gateway's `embed` alias
(metered like any call) — resumable, paused when the budget runs out, never half-indexed as
ready, and kept in the workspace's own schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.db.models import Max
from django_tenants.utils import schema_context

from apps.common.errors import ApplicationError
from apps.rag.intake import clean_filename
from apps.rag.models import Chunk, Collection, Document, DocumentFile
from apps.rag.services import (
    EMBED_FEATURE,
    document_add,
    document_delete,
    document_index,
    document_reindex,
)
from apps.traces.models import LlmCallLog
from apps.traces.services import call_records_flush
from apps.workspaces.models import AISettings, User, Workspace
from tests.gateway_support import gateway_settings

from .conftest import OnPlan

pytestmark = pytest.mark.django_db

GUIDE = b"""# Ocelot deployment guide

The ocelot service runs on port 7410 and keeps its state in PostgreSQL.

## Backups

Backups run nightly at 02:00 UTC and are kept for 35 days.

## Restores

To restore, stop the service, run `ocelot restore --from <backup>` and start it again.
"""


@pytest.fixture(autouse=True)
def _offline_glue(fresh_redis: redis.Redis) -> Iterator[None]:
    with gateway_settings():
        yield


def _add(user: User, data: bytes = GUIDE, name: str = "guide.md") -> Document:
    return document_add(user=user, data=data, filename=name, mime="text/markdown")


def test_a_markdown_document_is_chunked_embedded_and_ready(acme: Workspace, owner: User) -> None:
    call_records_flush()
    # Other tests commit calls of acme (some cache hits, at no cost): look at this test's only.
    before = LlmCallLog.objects.aggregate(last=Max("pk"))["last"] or 0
    with schema_context(acme.schema_name):
        # given a Markdown guide added by the owner
        document = _add(owner)
        assert document.status == Document.Status.QUEUED
        assert document.collection == Collection.objects.get(is_default=True)

        # when it is indexed
        result = document_index(workspace=acme, document_id=document.pk)

        # then every chunk has a 384-d vector of the offline model, with its heading path
        document.refresh_from_db()
        chunks = list(document.chunks.order_by("ordinal"))
        assert (result.status, document.status, document.error) == ("ready", "ready", "")
        assert document.chunk_count == len(chunks) == result.embedded >= 1
        assert document.embedding_model == "all-MiniLM-L6-v2"
        assert all(c.dims == 384 and c.vector is not None and len(c.vector) == 384 for c in chunks)
        backups = next(c for c in chunks if "02:00 UTC" in c.text)
        assert backups.heading_path == ["Ocelot deployment guide", "Backups"]
        assert backups.embed_text.startswith("Ocelot deployment guide > Backups")
    # and the embeddings were metered as calls of the workspace
    call_records_flush()
    calls = LlmCallLog.objects.filter(
        workspace_id=acme.pk, feature=EMBED_FEATURE, status="ok", pk__gt=before
    )
    assert calls.exists()
    assert all(c.alias == "embed" and c.cost_micros > 0 for c in calls)


def test_an_interrupted_embedding_resumes_without_duplicate_chunks(
    acme: Workspace, owner: User
) -> None:
    with schema_context(acme.schema_name):
        # given a document indexed, then half its vectors lost as if the worker died midway
        document = _add(owner)
        document_index(workspace=acme, document_id=document.pk)
        total = document.chunks.count()
        lost = list(
            document.chunks.order_by("-ordinal").values_list("pk", flat=True)[: total // 2 or 1]
        )
        Chunk.objects.filter(pk__in=lost).update(vector=None, dims=None, embedding_model="")
        Document.objects.filter(pk=document.pk).update(status=Document.Status.EMBEDDING)

        # when the task runs again
        result = document_index(workspace=acme, document_id=document.pk)

        # then only the missing vectors were made, and no chunk exists twice
        assert (result.status, result.embedded) == ("ready", len(lost))
        assert document.chunks.count() == total
        assert not document.chunks.filter(vector__isnull=True).exists()


def test_reindexing_keeps_the_vectors_of_unchanged_chunks(acme: Workspace, owner: User) -> None:
    with schema_context(acme.schema_name):
        document = _add(owner)
        document_index(workspace=acme, document_id=document.pk)
        total = document.chunks.count()

        # when the file changes in one section only and is indexed again
        edited = GUIDE.replace(b"35 days", b"90 days")
        document.file.data = edited
        document.file.save()
        Document.objects.filter(pk=document.pk).update(status=Document.Status.QUEUED)
        result = document_index(workspace=acme, document_id=document.pk)

        # then only the changed chunk was embedded again
        assert result.status == "ready"
        assert result.reused >= 1
        assert result.reused + result.embedded == total
        assert document.chunks.filter(text__contains="90 days").exists()
        assert not document.chunks.filter(text__contains="35 days").exists()


def test_a_workspace_out_of_budget_gets_its_document_paused_not_half_ready(
    acme: Workspace, owner: User
) -> None:
    AISettings.objects.update_or_create(workspace=acme, defaults={"daily_token_limit": 0})
    with schema_context(acme.schema_name):
        document = _add(owner)

        result = document_index(workspace=acme, document_id=document.pk)

        document.refresh_from_db()
        assert result.status == document.status == "paused"
        assert document.error.startswith("Paused:")
        assert document.chunks.exists()
        assert not document.chunks.filter(vector__isnull=False).exists()


def test_a_file_with_no_text_fails_with_a_reason(acme: Workspace, owner: User) -> None:
    with schema_context(acme.schema_name):
        document = _add(owner, data=b"   \n\n  \t ", name="blank.txt")

        result = document_index(workspace=acme, document_id=document.pk)

        document.refresh_from_db()
        assert result.status == document.status == "failed"
        assert document.error
        assert not document.chunks.exists()


def test_a_document_deleted_before_its_task_runs_leaves_nothing(
    acme: Workspace, owner: User
) -> None:
    with schema_context(acme.schema_name):
        document = _add(owner)
        pk = document.pk
        document.delete()

        assert document_index(workspace=acme, document_id=pk).status == "gone"
        assert not Chunk.objects.filter(document_id=pk).exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty."),
        (
            b"x" * 2001,
            "The document is 2,001 bytes; the Pro plan allows documents of at most 2,000",
        ),
        (b"PK\x03\x04 a zip", "not a supported file type"),
    ],
)
def test_bad_files_are_refused_before_anything_is_stored(
    acme: Workspace, owner: User, settings: Any, on_plan: OnPlan, data: bytes, message: str
) -> None:
    on_plan("pro")  # takes the setting
    settings.RAG_MAX_FILE_BYTES = 2000
    with schema_context(acme.schema_name):
        before = Document.objects.count()
        with pytest.raises(ApplicationError) as refused:
            document_add(user=owner, data=data, filename="notes.bin")
        assert message in refused.value.message
        assert refused.value.field == "file"
        assert Document.objects.count() == before


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\notes.md", "notes.md"),
        ("re\x00port\n.pdf", "report.pdf"),
        ("..", "document"),
        ("<b>notes</b>.html", "b_.html"),  # "/" is a directory separator
        ("a<b>c?.md", "a_b_c_.md"),
    ],
)
def test_file_names_lose_their_directories_and_control_characters(name: str, clean: str) -> None:
    assert clean_filename(name) == clean


def test_another_workspace_sees_none_of_the_documents(
    acme: Workspace, globex: Workspace, owner: User
) -> None:
    with schema_context(acme.schema_name):
        document = _add(owner)
        document_index(workspace=acme, document_id=document.pk)
        assert Chunk.objects.filter(document=document).exists()
    with schema_context(globex.schema_name):
        assert not Document.objects.filter(title="guide.md").exists()
        assert not Chunk.objects.filter(text__contains="ocelot").exists()


def test_adding_queues_the_indexing_only_after_the_commit(
    acme: Workspace, owner: User, django_capture_on_commit_callbacks: Any
) -> None:
    with (
        schema_context(acme.schema_name),
        django_capture_on_commit_callbacks(execute=False) as callbacks,
    ):
        _add(owner)
    # the task is sent once the document is committed (beside the live update to members)
    assert [c.__qualname__ for c in callbacks].count("_create.<locals>.<lambda>") == 1


def test_deleting_a_document_removes_its_bytes_and_chunks(acme: Workspace, owner: User) -> None:
    with schema_context(acme.schema_name):
        document = _add(owner)
        document_index(workspace=acme, document_id=document.pk)
        pk = document.pk

        document_delete(document=document)

        assert not Document.objects.filter(pk=pk).exists()
        assert not DocumentFile.objects.filter(document_id=pk).exists()
        assert not Chunk.objects.filter(document_id=pk).exists()


def test_reindexing_queues_the_document_again_after_the_commit(
    acme: Workspace, owner: User, django_capture_on_commit_callbacks: Any
) -> None:
    AISettings.objects.update_or_create(workspace=acme, defaults={"daily_token_limit": 0})
    with schema_context(acme.schema_name):
        document = _add(owner)
        document_index(workspace=acme, document_id=document.pk)  # paused: no budget
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            document = document_reindex(document=document)
    assert (document.status, document.error) == ("queued", "")
    assert [c.__qualname__ for c in callbacks].count("document_reindex.<locals>.<lambda>") == 1
