"""Reads for RAG, run inside the workspace's schema. `access_document` answers 404 for missing
and foreign alike (an id from another workspace's schema names nothing here)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import Http404

from apps.workspaces.models import Membership, User

from .models import Chunk, Document

IN_PROGRESS = frozenset(
    {
        Document.Status.QUEUED,
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


def document_chunks(*, document: Document) -> QuerySet[Chunk]:
    """The document's chunks in order, without their vectors or embedded text."""
    return (
        Chunk.objects.filter(document=document)
        .order_by("ordinal")
        .only("pk", "document_id", "ordinal", "text", "heading_path", "page", "token_count")
    )


def document_can_delete(*, document: Document, membership: Membership) -> bool:
    """Owners and admins delete any document; a member only those they added."""
    return membership.can_manage or (
        document.created_by_id is not None and document.created_by_id == membership.user_id
    )


def document_is_indexing(document: Document) -> bool:
    return document.status in IN_PROGRESS
