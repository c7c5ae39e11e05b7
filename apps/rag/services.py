"""Writes for RAG: adding documents and indexing them. Sync (the ORM), run inside the
workspace's schema: views and the API call `document_add` (bytes: files and pasted text) or
`document_add_url` (a web page); the Celery task calls `document_index`, which first fetches a
URL document's page. What may come in, and the plan's limits, are checked in `intake.py`.

Indexing is resumable. Parsing and chunking write every chunk of the document in one
transaction, without vectors; embedding then fills vectors batch by batch through the
gateway's `embed` alias (metered, budgeted and billed like any call), pinned to the model of
the schema's searched vectors (apps/rag/embedder.py; switched by apps/rag/reembed.py). A worker killed midway
leaves chunks without vectors, and the next run (Celery redelivers: acks_late) embeds only
those — no chunk is written twice. A workspace out of credit or budget gets its document
paused with the reason, never a half-embedded document shown as ready. Re-indexing keeps the
vector of every chunk whose text did not change (same hash, same model).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import structlog
from celery import current_app
from django.conf import settings
from django.db import connection, transaction

from apps.billing.plans import DocumentLimits
from apps.common.errors import ApplicationError
from apps.llm.services import Actor, BudgetExceededError, GatewayError, count_tokens
from apps.workspaces.models import User, Workspace
from apps.workspaces.selectors import workspace_current

from .embedder import embed_texts, index_route, index_start
from .ingest.chunk import chunk_document
from .ingest.parse import ParseError, parse_document
from .intake import (
    check_count,
    check_format,
    check_size,
    clean_filename,
    clean_title,
    page_fetch,
    url_check,
    url_title,
)
from .lexical import postings_write
from .live import document_changed
from .models import Chunk, Collection, Document, DocumentFile
from .selectors import document_limits

log = structlog.get_logger(__name__)

Status = Document.Status
EMBED_FEATURE = "rag.embed"


def collection_default() -> Collection:
    """The workspace's default collection, created on first use."""
    found = Collection.objects.filter(is_default=True).first()
    if found is not None:
        return found
    with transaction.atomic():
        found, _ = Collection.objects.get_or_create(is_default=True, defaults={"name": "Documents"})
    return found


def document_add(
    *,
    user: User | None,
    data: bytes,
    filename: str,
    mime: str = "",
    source: str = Document.Source.UPLOAD,
    title: str = "",
    collection: Collection | None = None,
) -> Document:
    """Store a document's bytes and queue it for indexing (after the commit), within the
    limits of the workspace's plan (the schema's workspace). `user` is None for a key of the
    API that no member made."""
    limits = document_limits(workspace=workspace_current())
    check_size(len(data), limits)
    filename = clean_filename(filename)
    check_format(data, filename=filename, mime=mime)
    document = _create(
        limits=limits,
        field="file",
        data=data,
        collection=collection,
        title=clean_title(title) or filename,
        source=source,
        filename=filename,
        mime=(mime or "")[:100],
        size_bytes=len(data),
        content_hash=hashlib.sha256(data).hexdigest(),
        created_by_id=user.pk if user else None,
    )
    log.info("rag.document_added", document_id=document.pk, size=len(data), source=source)
    return document


def document_add_url(
    *,
    user: User | None,
    url: str,
    title: str = "",
    source: str = Document.Source.URL,
    collection: Collection | None = None,
) -> Document:
    """Queue a web page to be imported: its URL is checked now as far as that needs no network
    (intake.url_check); the indexing task fetches the page through the SSRF-safe fetcher."""
    url = url_check(url)
    document = _create(
        limits=document_limits(workspace=workspace_current()),
        field="url",
        data=None,
        collection=collection,
        title=clean_title(title) or url_title(url),
        source=source,
        url=url,
        content_hash="",
        created_by_id=user.pk if user else None,
    )
    log.info("rag.document_url_added", document_id=document.pk, source=source)
    return document


def _create(
    *,
    limits: DocumentLimits,
    field: str,
    data: bytes | None,
    collection: Collection | None,
    **fields: Any,
) -> Document:
    """The document row (and its bytes), counted against the plan, queued after the commit."""
    with transaction.atomic():
        check_count(limits, field=field)
        document = Document.objects.create(collection=collection or collection_default(), **fields)
        if data is not None:
            DocumentFile.objects.create(document=document, data=data)
        transaction.on_commit(lambda: _enqueue(document.pk))
        document_changed(document.pk, status=document.status, title=document.title)
    return document


# Sent by name: the task module imports this one. The project's Celery app adds the sender's
# schema to the message (tenant-schemas-celery), so the task runs in this workspace.
INDEX_TASK = "apps.rag.tasks.index_document"


def _enqueue(document_id: int) -> None:
    current_app.send_task(INDEX_TASK, args=[document_id])


@dataclass(frozen=True, slots=True)
class IndexResult:
    status: str
    embedded: int  # chunks embedded by this run
    reused: int  # chunks whose vector was kept from before


def _set_status(document_id: int, status: str, **fields: Any) -> int:
    """Update by id: a document deleted meanwhile updates nothing (and leaves no orphans).
    Members' pages hear of it over the workspace socket."""
    changed = Document.objects.filter(pk=document_id).update(status=status, **fields)
    if changed:
        shown = {k: v for k, v in fields.items() if k in ("error", "chunk_count")}
        document_changed(document_id, status=status, **shown)
    return changed


def document_index(*, workspace: Workspace, document_id: int) -> IndexResult:
    """Parse, chunk and embed a document; resume its embedding if it was interrupted."""
    document = Document.objects.filter(pk=document_id).first()
    if document is None:
        return IndexResult(status="gone", embedded=0, reused=0)
    reused = 0
    resuming = document.status in (Status.EMBEDDING, Status.PAUSED) and document.chunks.exists()
    if not resuming:
        try:
            if document.url and not _fetch(workspace, document):
                return IndexResult(status="gone", embedded=0, reused=0)
            reused = _rechunk(document)
        except ApplicationError as exc:  # unreadable, unfetchable, too large: said to people
            _set_status(document.pk, Status.FAILED, error=exc.message, chunk_count=0)
            log.info("rag.document_failed", document_id=document.pk, error=exc.message)
            return IndexResult(status=Status.FAILED, embedded=0, reused=0)
    _set_status(document.pk, Status.EMBEDDING, error="")
    return _embed(workspace, document, reused=reused)


def _fetch(workspace: Workspace, document: Document) -> bool:
    """Fetch a URL document's page (again, on re-index) and keep it as the document's bytes;
    False when the document was deleted meanwhile."""
    _set_status(document.pk, Status.FETCHING, error="")
    page = page_fetch(document.url, limits=document_limits(workspace=workspace))
    with transaction.atomic():
        if not Document.objects.select_for_update().filter(pk=document.pk).exists():
            return False
        DocumentFile.objects.update_or_create(document=document, defaults={"data": page.data})
        document.filename, document.mime = page.filename, page.mime
        document.size_bytes = len(page.data)
        document.content_hash = hashlib.sha256(page.data).hexdigest()
        document.save(update_fields=["filename", "mime", "size_bytes", "content_hash"])
    return True


def _rechunk(document: Document) -> int:
    """Replace the document's chunks by those of its current bytes; keep the vectors of chunks
    whose text is unchanged. Returns how many vectors were kept."""
    _set_status(document.pk, Status.PARSING, error="")
    data = bytes(DocumentFile.objects.get(document=document).data)
    parsed = parse_document(data, filename=document.filename, mime=document.mime or None)
    _set_status(document.pk, Status.CHUNKING)
    pieces = chunk_document(
        parsed,
        count=count_tokens,
        target_tokens=settings.RAG_CHUNK_TARGET_TOKENS,
        max_tokens=settings.RAG_CHUNK_MAX_TOKENS,
        overlap_tokens=settings.RAG_CHUNK_OVERLAP_TOKENS,
    )
    if not pieces:
        raise ParseError("No text found in this document.", field="file")
    with transaction.atomic():
        kept = {
            c.content_hash: c
            for c in Chunk.objects.filter(document=document, vector__isnull=False).only(
                "content_hash",
                "vector",
                "dims",
                "embedding_model",
                "next_vector",
                "next_dims",
                "next_model",
            )
        }
        Chunk.objects.filter(document=document).delete()
        rows = []
        reused = 0
        for piece in pieces:
            old = kept.get(piece.content_hash)
            if old is not None:
                reused += 1
            rows.append(
                Chunk(
                    document=document,
                    ordinal=piece.ordinal,
                    text=piece.text,
                    embed_text=piece.embed_text,
                    heading_path=list(piece.heading_path),
                    page=piece.page,
                    token_count=piece.token_count,
                    content_hash=piece.content_hash,
                    embedding_model=old.embedding_model if old else "",
                    dims=old.dims if old else None,
                    vector=old.vector if old else None,
                    next_model=old.next_model if old else "",
                    next_dims=old.next_dims if old else None,
                    next_vector=old.next_vector if old else None,
                )
            )
        Chunk.objects.bulk_create(rows)
        postings_write(document.pk)  # BM25 postings with the chunks; the old ones cascaded
        Document.objects.filter(pk=document.pk).update(chunk_count=len(rows))
    return reused


def _embed(workspace: Workspace, document: Document, *, reused: int) -> IndexResult:
    """Embed the chunks still without a vector with the schema's recorded model (the one
    search uses; apps/rag/embedder.py), then mark the document ready."""
    actor = Actor("system", "rag")
    embedded = 0
    index_start(workspace)
    while True:
        todo = list(
            Chunk.objects.filter(document=document, vector__isnull=True)
            .order_by("ordinal")
            .values_list("pk", "embed_text")[: settings.RAG_EMBED_BATCH]
        )
        if not todo:
            finished = _finish(document)
            if finished is None:
                continue  # vectors of another model (kept, or from before a switch): redo
            if not finished:
                return IndexResult(status="gone", embedded=embedded, reused=reused)
            break
        try:
            reply = embed_texts(
                workspace=workspace,
                inputs=tuple(text for _, text in todo),
                feature=EMBED_FEATURE,
                route=index_route(),
                actor=actor,
                request_id=f"rag-{document.pk}-{todo[0][0]}",
            )
        except BudgetExceededError as exc:
            reason = f"Paused: {exc.message} Re-index it to resume."
            _set_status(document.pk, Status.PAUSED, error=reason)
            return IndexResult(status=Status.PAUSED, embedded=embedded, reused=reused)
        except GatewayError as exc:
            reason = f"The embedding model failed: {exc.message} Re-index to try again."
            _set_status(document.pk, Status.FAILED, error=reason)
            return IndexResult(status=Status.FAILED, embedded=embedded, reused=reused)
        embeddings = [
            Chunk(pk=pk, vector=list(vector), dims=len(vector), embedding_model=reply.model)
            for (pk, _), vector in zip(todo, reply.vectors, strict=True)
        ]
        # One UPDATE per batch; rows of a document deleted meanwhile are simply not there.
        Chunk.objects.bulk_update(embeddings, ["vector", "dims", "embedding_model"])
        embedded += len(todo)
    log.info("rag.document_ready", document_id=document.pk, embedded=embedded, reused=reused)
    return IndexResult(status=Status.READY, embedded=embedded, reused=reused)


def _finish(document: Document) -> bool | None:
    """Mark the document ready if every vector is the recorded model's: True, or False when
    the document is gone; None after forgetting vectors of another model. The index row is
    read under a share lock, so a model switch (which holds it for update) happens wholly
    before or after: a document never turns ready with the old model's vectors after it."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT model FROM rag_embeddingindex WHERE id = 1 FOR SHARE")
            row = cursor.fetchone()
        model = row[0] if row else ""
        if not model:  # every vector was kept from before the row existed
            found = Chunk.objects.filter(document=document).exclude(embedding_model="")
            model = found.values_list("embedding_model", flat=True).first() or ""
        if model and _drop_other_models(document, model):
            return None
        return bool(_set_status(document.pk, Status.READY, error="", embedding_model=model))


def _drop_other_models(document: Document, model: str) -> int:
    """Forget vectors of chunks embedded with another model than `model` (to embed again)."""
    return (
        Chunk.objects.filter(document=document, vector__isnull=False)
        .exclude(embedding_model=model)
        .update(vector=None, dims=None, embedding_model="")
    )


def document_reindex(*, document: Document) -> Document:
    """Parse, chunk and embed the document again (after a failure or a pause, or to pick up a
    better parser); unchanged chunks keep their vectors."""
    _set_status(document.pk, Status.QUEUED, error="")
    transaction.on_commit(lambda: _enqueue(document.pk))
    document.refresh_from_db()
    return document


def document_delete(*, document: Document) -> None:
    """The document, its bytes and its chunks (vectors included), at once."""
    pk = document.pk
    with transaction.atomic():
        document.delete()
        document_changed(pk, status="deleted")
