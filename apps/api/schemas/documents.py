"""`/v1/documents`: an API client adds documents to its workspace (a file as multipart, text or
a URL as JSON), lists, reads and deletes them, and searches their chunks.

JSON numbers are strict (a string or a fraction is refused, not read as a number); multipart
fields arrive as text, so there `collection` is plain digits. Text that PostgreSQL cannot keep
(a NUL, an unpaired surrogate) is refused. What the JSON Schemas below allow is a superset of
what is accepted: never the other way round.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from apps.rag.intake import MAX_TITLE_CHARS, MAX_URL_CHARS
from apps.rag.models import Document as DocumentRow
from apps.rag.retrieval import MAX_K, MAX_QUERY_CHARS, Mode

from .openai import Strict
from .outcomes import MAX_ID, NO_NUL, PageSize, storable, whole_number

MAX_FILTER_IDS = 100
# The model's choices, inline in the document (not components named after Django's classes).
Status = Annotated[
    DocumentRow.Status,
    WithJsonSchema({"type": "string", "enum": list(DocumentRow.Status.values)}),
]
Source = Annotated[
    DocumentRow.Source,
    WithJsonSchema({"type": "string", "enum": list(DocumentRow.Source.values)}),
]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("string_blank", "Input should contain more than blank space")
    return value


Id = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]
QueryId = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(whole_number)]
Title = Annotated[
    str,
    Field(max_length=MAX_TITLE_CHARS, json_schema_extra=NO_NUL),
    BeforeValidator(storable),
]
Collection = Annotated[
    Id | None,
    Field(description="A collection id of this workspace; default: the workspace's default."),
]


class DocumentFromText(BaseModel):
    """POST /v1/documents as JSON: text to add as a document."""

    model_config = Strict
    text: Annotated[
        str,
        Field(min_length=1, json_schema_extra=NO_NUL, description="The document's text."),
        BeforeValidator(storable),
        AfterValidator(_not_blank),
    ]
    title: Annotated[Title, Field(min_length=1, examples=["Release notes"])]
    format: Annotated[
        Literal["text", "markdown"],
        Field(description="How the text is parsed: plain text, or Markdown (headings, lists)."),
    ] = "text"
    collection: Collection = None


class DocumentFromUrl(BaseModel):
    """POST /v1/documents as JSON: a web page to import. The URL is checked at once (scheme,
    host, no private address); the page is fetched while indexing, and a page that cannot be
    imported ends as a `failed` document with the reason in `error`."""

    model_config = Strict
    url: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_URL_CHARS,
            json_schema_extra=NO_NUL,
            examples=["https://example.com/handbook"],
        ),
        BeforeValidator(storable),
    ]
    title: Annotated[Title | None, Field(description="Default: the address.")] = None
    collection: Collection = None


class DocumentUpload(BaseModel):
    """POST /v1/documents as multipart/form-data: one file (PDF, HTML, Markdown or text)."""

    model_config = Strict
    file: Annotated[
        bytes,
        WithJsonSchema({"type": "string", "format": "binary"}),
        Field(description="The file, as a part with a file name."),
    ]
    title: Annotated[Title | None, Field(description="Default: the file's name.")] = None
    collection: Annotated[
        QueryId | None,
        Field(description="A collection id of this workspace; default: the workspace's default."),
    ] = None


class DocumentListQuery(BaseModel):
    """GET /v1/documents: the query string."""

    model_config = Strict
    limit: Annotated[PageSize, Field(description="Documents per page.")] = 20
    after: Annotated[
        QueryId | None,
        Field(description="The last `id` of the previous page: the page starts after it."),
    ] = None
    status: Annotated[Status | None, Field(description="Only documents in this state.")] = None
    collection: Annotated[QueryId | None, Field(description="Only this collection's.")] = None


class DocumentSearch(BaseModel):
    """POST /v1/documents/search."""

    model_config = Strict
    query: Annotated[
        str,
        Field(min_length=1, max_length=MAX_QUERY_CHARS, json_schema_extra=NO_NUL),
        BeforeValidator(storable),
        AfterValidator(_not_blank),
    ]
    k: Annotated[
        int, Field(strict=True, ge=1, le=MAX_K, description="How many chunks to return.")
    ] = 8
    mode: Annotated[
        Mode,
        Field(
            description=(
                "`hybrid`: BM25 and embeddings fused (degrades to BM25 when the embedding "
                "model fails); `lexical`: BM25 only (no model call); `dense`: embeddings only."
            )
        ),
    ] = "hybrid"
    collection_ids: Annotated[
        list[Id] | None,
        Field(max_length=MAX_FILTER_IDS, description="Only chunks of these collections."),
    ] = None
    document_ids: Annotated[
        list[Id] | None,
        Field(max_length=MAX_FILTER_IDS, description="Only chunks of these documents."),
    ] = None


# --- responses ------------------------------------------------------------------------------


class Document(BaseModel):
    """A document and its indexing: `queued` → (`fetching`, for a URL) → `parsing` →
    `chunking` → `embedding` → `ready`; or `paused` (out of credit or budget: re-index to
    resume) or `failed`, with the reason in `error`."""

    id: int
    object: Literal["document"]
    title: str
    source: Source
    status: Status
    error: str | None = Field(description="Why it failed or paused, for a person.")
    chunk_count: int
    collection_id: int
    filename: str | None
    url: str | None
    mime: str | None
    size_bytes: int
    embedding_model: str | None
    created_at: datetime
    updated_at: datetime


class DocumentList(BaseModel):
    """Documents, newest first."""

    object: Literal["list"]
    data: list[Document]
    has_more: bool = Field(description="More documents follow: ask again with `after`.")


class DocumentDeleted(BaseModel):
    id: int
    object: Literal["document.deleted"]
    deleted: Literal[True]


class SearchHit(BaseModel):
    """A chunk that answers the query, best first."""

    object: Literal["search.hit"]
    document_id: int
    document_title: str
    chunk_id: int
    ordinal: int = Field(description="The chunk's position in its document, from 0.")
    heading_path: list[str] = Field(description="The headings the chunk sits under.")
    page: int | None = Field(description="The PDF page, from 1; null for other formats.")
    text: str
    score: float = Field(description="The fused score (or the one leg's); higher is better.")
    lexical_score: float | None = Field(description="BM25; null when that leg missed it.")
    dense_score: float | None = Field(description="Cosine similarity; null when that leg missed.")


class SearchResults(BaseModel):
    object: Literal["list"]
    data: list[SearchHit]
    mode: Mode


# POST /v1/documents as JSON: one of these (their fields do not overlap).
BODIES = (DocumentFromText, DocumentFromUrl)
