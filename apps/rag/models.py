"""Collections, documents and chunks: tenant-schema tables, so a workspace's knowledge and its
vector index live in its own schema and every search is tenant-scoped by construction (no
cross-schema index, no post-filter). See docs/architecture.md, "Tenancy"."""

from __future__ import annotations

from typing import ClassVar

from django.contrib.postgres.fields import ArrayField
from django.db import models
from pgvector.django import VectorField

from apps.common.models import BaseModel


class Collection(BaseModel):
    """A named set of documents. Every workspace has a default one; agents may be limited to
    some collections."""

    name = models.CharField(max_length=100)
    is_default = models.BooleanField(default=False)
    created_by_id = models.BigIntegerField(null=True, blank=True)  # a public-schema user

    class Meta:
        ordering: ClassVar[list[str]] = ["name"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["name"], name="rag_collection_unique_name"),
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="rag_one_default_collection",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Document(BaseModel):
    class Source(models.TextChoices):
        UPLOAD = "upload"
        URL = "url"
        TEXT = "text"
        API = "api"

    class Status(models.TextChoices):
        QUEUED = "queued"
        FETCHING = "fetching"  # a URL document's page is being downloaded
        PARSING = "parsing"
        CHUNKING = "chunking"
        EMBEDDING = "embedding"
        READY = "ready"
        PAUSED = "paused"  # out of credit or budget: resumes where it stopped
        FAILED = "failed"

    collection = models.ForeignKey(Collection, on_delete=models.PROTECT, related_name="documents")
    title = models.CharField(max_length=300)
    source = models.CharField(max_length=8, choices=Source.choices)
    filename = models.CharField(max_length=255, blank=True)
    url = models.URLField(max_length=2000, blank=True)  # set: the page is fetched when indexed
    mime = models.CharField(max_length=100, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    content_hash = models.CharField(max_length=64)  # sha256 of the bytes
    version = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)  # why it failed or paused, for a person
    created_by_id = models.BigIntegerField(null=True, blank=True)  # a public-schema user
    chunk_count = models.PositiveIntegerField(default=0)
    embedding_model = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-pk"]
        indexes: ClassVar[list[models.Index]] = [models.Index(fields=["collection", "status"])]

    def __str__(self) -> str:
        return self.title


class DocumentFile(models.Model):
    """The document's bytes as received, kept in the workspace's schema (re-index and re-embed
    read them again; deleting the document deletes them)."""

    document = models.OneToOneField(
        Document, on_delete=models.CASCADE, primary_key=True, related_name="file"
    )
    data = models.BinaryField()

    def __str__(self) -> str:
        return f"file of {self.document_id}"


class Chunk(models.Model):
    """A passage of a document, as embedded and as cited.

    `vector` has no fixed dimensions, so documents of models with different sizes can coexist
    while a workspace switches models; each size gets its own partial HNSW index on
    `vector::vector(<dims>)` (migration 0002), which a search uses by filtering on `dims` and
    casting the same way. A chunk without a vector is waiting to be embedded."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    embed_text = models.TextField()  # the heading path, then the text: what is embedded
    heading_path = ArrayField(models.CharField(max_length=300), default=list, blank=True)
    page = models.PositiveIntegerField(null=True, blank=True)
    token_count = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64)  # sha256 of embed_text
    embedding_model = models.CharField(max_length=100, blank=True)
    dims = models.PositiveSmallIntegerField(null=True, blank=True)
    vector = VectorField(null=True, blank=True)
    # While the workspace switches models (apps/rag/reembed.py): the vector of the model being
    # switched to. Search reads `vector` until every chunk has one, then they swap at once.
    next_model = models.CharField(max_length=100, blank=True, db_default="")  # raw COPY too
    next_dims = models.PositiveSmallIntegerField(null=True, blank=True)
    next_vector = VectorField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["document", "ordinal"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["document", "ordinal"], name="rag_chunk_ordinal"),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["document"],
                condition=models.Q(vector__isnull=True),
                name="rag_chunk_unembedded",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"


class Term(models.Model):
    """One posting of the lexical (BM25) index: a stemmed term of a chunk's `embed_text`, how
    often it occurs there (`tf`) and the chunk's length in terms (`dl`, repeated on every
    posting so scoring reads only this table). Written with the chunks, in the same
    transaction (apps/rag/lexical.py); the primary key (term, chunk) is the term index a query
    reads, and df is counted from it at query time.

    The foreign key is DO_NOTHING for Django and ON DELETE CASCADE in the database (migration
    0003): deleting chunks stays one fast DELETE instead of Django loading every chunk (vectors
    included) to collect its postings, and every way chunks go (re-index, document delete)
    takes their postings with them."""

    pk = models.CompositePrimaryKey("term", "chunk")
    term = models.TextField()
    chunk = models.ForeignKey(
        Chunk, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    tf = models.PositiveIntegerField()
    dl = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.term}@{self.chunk_id}"


class LexicalStats(models.Model):
    """The schema's BM25 corpus statistics, one row (id 1): how many chunks have postings and
    their total length. Kept by a statement trigger on rag_term (migration 0003), so inserts,
    re-index and cascaded deletes all count, whichever code path ran them."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    chunks = models.BigIntegerField(default=0)
    tokens = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.chunks} chunks, {self.tokens} terms"


class TermDF(models.Model):
    """A term's document frequency: how many chunks hold it. Kept by rag_term's statement
    trigger (migration 0005) with the corpus statistics, so a search reads df here instead of
    counting every posting of its terms."""

    term = models.TextField(primary_key=True)
    df = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.term}: {self.df}"


class EmbeddingIndex(models.Model):
    """The schema's embedding model for documents, one row (id 1): the route (provider and
    model) that made the searchable vectors, so a query and a new document are embedded by
    that same model whatever the `embed` alias answers with now; and, while a switch runs
    (apps/rag/reembed.py), the route switched to and its progress. Recorded when the first
    document is embedded."""

    class Status(models.TextChoices):
        IDLE = "idle"
        SWITCHING = "switching"
        FAILED = "failed"  # the switch stopped (the model failed, no budget): start it again

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    provider = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=100, blank=True)
    target_provider = models.CharField(max_length=50, blank=True)
    target_model = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.IDLE)
    done = models.PositiveIntegerField(default=0)  # chunks holding the target's vector
    total = models.PositiveIntegerField(default=0)  # chunks to switch
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.provider}:{self.model} ({self.status})"
