"""The outcomes and documents routes in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from .. import schemas
from ..schemas.documents import BODIES as DOCUMENT_BODIES
from ..schemas.outcomes import MAX_ID
from .operations import operation, query_parameters


def outcome_paths(models: dict[str, Any]) -> dict[str, Any]:
    from django.conf import settings  # the hook runs with settings; this module may not

    days = settings.OUTCOME_DISPUTE_WINDOW_DAYS
    scope = "Needs a key with the `outcomes` scope (not given to new keys unless chosen)."
    no_scope = {"403": "The key does not have the `outcomes` scope."}
    return {
        "/v1/outcomes": {
            "post": operation(
                models,
                operation_id="v1_outcomes_create",
                summary="Record a billable outcome",
                description=(
                    "Report a result the workspace is billed for, such as a resolved ticket. "
                    f"It stays `pending` for the dispute window ({days} days), in which the "
                    "workspace's owners and admins can dispute it on the billing page; then it "
                    "is billed. **Idempotent** per workspace and `external_id`, so a retry is "
                    "safe: 201 when this request recorded it; the same `external_id` again with "
                    "the same `kind` and `price_usd` answers 200 with the first outcome, "
                    "unchanged (its `trace_id` and `run_id` are kept); with another kind or "
                    f"price, 409. {scope}"
                ),
                body=schemas.OutcomeCreate,
                response=schemas.Outcome,
                ok={
                    "201": "Recorded, pending.",
                    "200": "Recorded before with the same kind and price: that outcome.",
                },
                errors=("400", "401", "403", "409", "413"),
                tag="Outcomes",
                notes={
                    **no_scope,
                    "409": "This `external_id` was recorded with another kind or price.",
                },
            ),
            "get": operation(
                models,
                operation_id="v1_outcomes_list",
                summary="List outcomes",
                description=(
                    "The key's workspace's outcomes, newest first, `limit` a page; the next "
                    "page starts `after` the last `id` of this one while `has_more` is true. "
                    f"`external_id` finds one outcome by your id. {scope}"
                ),
                response=schemas.OutcomeList,
                parameters=query_parameters(schemas.OutcomeListQuery, models),
                errors=("400", "401", "403"),
                tag="Outcomes",
                notes=no_scope,
            ),
        },
        "/v1/outcomes/{outcome_id}": {
            "get": operation(
                models,
                operation_id="v1_outcomes_retrieve",
                summary="Retrieve an outcome",
                description=f"One outcome of the key's workspace, by its `id`. {scope}",
                response=schemas.Outcome,
                parameters=[
                    {
                        "name": "outcome_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                    }
                ],
                errors=("401", "403", "404"),
                tag="Outcomes",
                notes={**no_scope, "404": "No outcome with this id in the key's workspace."},
            ),
        },
    }


def document_paths(models: dict[str, Any]) -> dict[str, Any]:
    scope = "Needs a key with the `documents` scope (not given to new keys unless chosen)."
    no_scope = {"403": "The key does not have the `documents` scope."}
    document_id = [
        {
            "name": "document_id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        }
    ]
    missing = {**no_scope, "404": "No document with this id in the key's workspace."}
    return {
        "/v1/documents": {
            "post": operation(
                models,
                operation_id="v1_documents_create",
                summary="Add a document",
                description=(
                    "Add a document to the key's workspace and queue it for indexing: a file "
                    "(PDF, HTML, Markdown or plain text) as multipart/form-data, or as JSON "
                    "either `text` with a `title`, or the `url` of a web page (fetched while "
                    "indexing, through a fetcher that refuses private addresses; its main "
                    "content is kept). Answers 201 with the document `queued`: poll "
                    "`GET /v1/documents/{document_id}` until it is `ready` (or `failed`, "
                    "with the reason in `error`). The workspace's plan bounds how many "
                    f"documents it holds and how large each is. {scope}"
                ),
                bodies=DOCUMENT_BODIES,
                upload=schemas.DocumentUpload,
                response=schemas.Document,
                ok={"201": "Added and queued for indexing."},
                errors=("400", "401", "403", "404", "409", "413", "429"),
                tag="Documents",
                notes={
                    **no_scope,
                    "404": "No collection with this id in the key's workspace.",
                    "409": "The workspace holds as many documents as its plan allows.",
                    "413": "The document is larger than the workspace's plan allows.",
                },
            ),
            "get": operation(
                models,
                operation_id="v1_documents_list",
                summary="List documents",
                description=(
                    "The key's workspace's documents, newest first, `limit` a page; the next "
                    "page starts `after` the last `id` of this one while `has_more` is true. "
                    f"{scope}"
                ),
                response=schemas.DocumentList,
                parameters=query_parameters(schemas.DocumentListQuery, models),
                errors=("400", "401", "403", "429"),
                tag="Documents",
                notes=no_scope,
            ),
        },
        "/v1/documents/search": {
            "post": operation(
                models,
                operation_id="v1_documents_search",
                summary="Search documents",
                description=(
                    "The `k` chunks of the workspace's ready documents that best answer "
                    "`query`, best first, each with its document, heading path, page and text. "
                    "`hybrid` (the default) fuses BM25 with the embedding model's similarity; "
                    "the query's embedding is metered and budgeted like any model call. "
                    f"{scope}"
                ),
                body=schemas.DocumentSearch,
                response=schemas.SearchResults,
                errors=("400", "401", "403", "413", "429", "502", "503"),
                tag="Documents",
                notes=no_scope,
            ),
        },
        "/v1/documents/{document_id}": {
            "get": operation(
                models,
                operation_id="v1_documents_retrieve",
                summary="Retrieve a document",
                description=(
                    "One document of the key's workspace: its status, chunk count and, when "
                    f"it failed or paused, the reason. {scope}"
                ),
                response=schemas.Document,
                parameters=document_id,
                errors=("401", "403", "404", "429"),
                tag="Documents",
                notes=missing,
            ),
            "delete": operation(
                models,
                operation_id="v1_documents_delete",
                summary="Delete a document",
                description=(
                    f"The document, its bytes, its chunks and their embeddings, at once. {scope}"
                ),
                response=schemas.DocumentDeleted,
                parameters=document_id,
                errors=("401", "403", "404", "429"),
                tag="Documents",
                notes=missing,
            ),
        },
    }
