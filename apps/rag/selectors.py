"""Reads for RAG, run inside the workspace's schema. `access_document` answers 404 for missing
and foreign alike (an id from another workspace's schema names nothing here)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import Http404

from apps.billing.plans import DocumentLimits, plan_document_limits
from apps.workspaces.models import Membership, User, Workspace

from .models import Chunk, Collection, Document, EmbeddingIndex

IN_PROGRESS = frozenset(
    {
        Document.Status.QUEUED,
        Document.Status.FETCHING,
        Document.Status.PARSING,
        Document.Status.CHUNKING,
        Document.Status.EMBEDDING,
    }
)


@dataclass(frozen=True, slots=True)
class DocumentRow:
    """A document as listed: with who added it, by email (a public-schema user)."""

    document: Document
    added_by: str


def document_list() -> QuerySet[Document]:
    """The workspace's documents, newest first (bytes and chunks not loaded)."""
    return Document.objects.select_related("collection").order_by("-created_at", "-pk")


def document_page(
    *,
    limit: int,
    after_id: int | None = None,
    collection_id: int | None = None,
    status: str | None = None,
) -> tuple[list[Document], bool]:
    """A page of the workspace's documents, newest first, starting after the document
    `after_id` (a cursor: the last id of the previous page); and whether more follow."""
    documents = Document.objects.select_related("collection").order_by("-pk")
    if after_id is not None:
        documents = documents.filter(pk__lt=after_id)
    if collection_id is not None:
        documents = documents.filter(collection_id=collection_id)
    if status is not None:
        documents = documents.filter(status=status)
    rows = list(documents[: limit + 1])
    return rows[:limit], len(rows) > limit


def document_limits(*, workspace: Workspace) -> DocumentLimits:
    """How many documents the workspace's plan allows, and how large each may be."""
    return plan_document_limits(workspace=workspace)


def document_rows(documents: Iterable[Document]) -> list[DocumentRow]:
    """`documents` with their authors' emails, in one query for the users."""
    documents = list(documents)
    ids = {d.created_by_id for d in documents if d.created_by_id is not None}
    emails = dict(User.objects.filter(pk__in=ids).values_list("pk", "email")) if ids else {}
    return [
        DocumentRow(document=d, added_by=emails.get(d.created_by_id or 0, "a former member"))
        for d in documents
    ]


def access_document(*, document_id: object) -> Document:
    try:
        pk = int(str(document_id))
    except ValueError:
        raise Http404("No such document.") from None
    found = Document.objects.select_related("collection").filter(pk=pk).first()
    if found is None:
        raise Http404("No such document.")
    return found


def access_collection(*, collection_id: object) -> Collection:
    try:
        pk = int(str(collection_id))
    except ValueError:
        raise Http404("No such collection.") from None
    found = Collection.objects.filter(pk=pk).first()
    if found is None:
        raise Http404("No such collection.")
    return found


def document_chunks(*, document: Document) -> QuerySet[Chunk]:
    """The document's chunks in order, without their vectors or embedded text."""
    return (
        Chunk.objects.filter(document=document)
        .order_by("ordinal")
        .only("pk", "document_id", "ordinal", "text", "heading_path", "page", "token_count")
    )


def chunk_page_number(*, document: Document, ordinal: int, per_page: int) -> int:
    """The page (from 1) of the document's chunk list that shows the chunk `ordinal`."""
    before = document_chunks(document=document).filter(ordinal__lt=ordinal).count()
    return before // per_page + 1


def document_can_delete(*, document: Document, membership: Membership) -> bool:
    """Owners and admins delete any document; a member only those they added."""
    return membership.can_manage or (
        document.created_by_id is not None and document.created_by_id == membership.user_id
    )


def document_is_indexing(document: Document) -> bool:
    return document.status in IN_PROGRESS


def embedding_index_get() -> EmbeddingIndex | None:
    """The current schema's embedding model and switch (None before any document was
    embedded)."""
    return EmbeddingIndex.objects.filter(pk=1).first()
