"""The /v1 API (OpenAI-compatible endpoints, outcomes and documents) in the OpenAPI document
that drf-spectacular serves at /api/schema/.

The endpoints are not DRF views (app.py says why), so a spectacular post-processing hook adds
them, with JSON Schemas generated from the pydantic models that validate the requests
(schemas.py): the document cannot drift from the validation, and schemathesis checks the
answers against the response models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from apps.llm.services import routing_table

from . import schemas
from .schemas.documents import BODIES as DOCUMENT_BODIES
from .schemas.outcomes import MAX_ID

REF = "#/components/schemas/{model}"
ERRORS = {
    "400": "Invalid request: the message names the field (`param`).",
    "401": "Missing, unknown, revoked or expired API key.",
    "402": "A budget (or the credit balance) is exhausted; the message names the scope.",
    "403": "The key's scopes do not allow this endpoint.",
    "404": "Unknown model alias.",
    "409": "The request conflicts with what was recorded before; the message says how.",
    "413": "The request body is too large.",
    "429": "Rate limit (per key per minute, or per user per day); see `retry-after`.",
    "502": "The provider failed (after the retry and the fallback).",
    "503": "No provider could answer right now.",
}


def _schema(model: type[BaseModel], components: dict[str, Any], mode: str) -> dict[str, str]:
    """Register `model` (and the models it uses) as components; return a $ref to it."""
    schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault(model.__name__, schema)
    return {"$ref": REF.format(model=model.__name__)}


def _form_schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    """`model` as a multipart/form-data body: each field a part, optional ones without their
    null (a form field is sent or left out, never null)."""
    schema = model.model_json_schema(ref_template=REF, mode="validation")
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    for name, field in schema["properties"].items():
        variants = [v for v in field.pop("anyOf", []) if v.get("type") != "null"]
        if variants:
            field.update(variants[0])
        if field.get("default", "") is None:
            del field["default"]
        schema["properties"][name] = field
    return schema


def _query_parameters(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    """One OpenAPI query parameter per field of `model` (optional ones without their null)."""
    schema = model.model_json_schema(ref_template=REF, mode="validation")
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    parameters = []
    for name, field in schema["properties"].items():
        field = {k: v for k, v in field.items() if k != "title"}
        description = field.pop("description", "")
        variants = [v for v in field.pop("anyOf", []) if v.get("type") != "null"]
        if variants:
            field = {**variants[0], **field}
        if field.get("default", "") is None:
            del field["default"]
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", ()),
                "description": description,
                "schema": field,
            }
        )
    return parameters


def _operation(
    components: dict[str, Any],
    *,
    summary: str,
    description: str,
    operation_id: str,
    response: type[BaseModel],
    body: type[BaseModel] | None = None,
    bodies: tuple[type[BaseModel], ...] = (),
    upload: type[BaseModel] | None = None,
    errors: tuple[str, ...],
    stream: bool = False,
    ok: dict[str, str] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    notes: dict[str, str] | None = None,
    tag: str = "OpenAI-compatible API",
) -> dict[str, Any]:
    """One operation. `body`: its JSON body, or `bodies`: one of several; `upload`: a
    multipart/form-data body besides. `ok`: its success statuses and what each means (default
    200); `notes`: what an error status means for this operation, where ERRORS says something
    else."""
    error = _schema(schemas.Error, components, "serialization")
    content: dict[str, Any] = {
        "application/json": {"schema": _schema(response, components, "serialization")}
    }
    if stream:
        chunk = _schema(schemas.ChatCompletionChunk, components, "serialization")
        # One schema per server-sent event (as OpenAPI 3.2's itemSchema): its `data` is the
        # JSON of a chunk, then `[DONE]`; or, when the provider fails mid-stream, an error.
        content["text/event-stream"] = {
            "schema": {
                "type": "object",
                "required": ["data"],
                "properties": {
                    "event": {"type": "string"},
                    "data": {
                        "type": "string",
                        "description": "A ChatCompletionChunk or an Error as JSON, or [DONE].",
                        "contentMediaType": "application/json",
                        "contentSchema": {"anyOf": [chunk, error, {"const": "[DONE]"}]},
                    },
                },
            }
        }
    headers = {
        "x-request-id": {"schema": {"type": "string"}},
        "x-aisaas-overhead-ms": {
            "schema": {"type": "string"},
            "description": "Time spent in the gateway, excluding the provider.",
        },
    }
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "tags": [tag],
        "security": [{"WorkspaceApiKey": []}],
        "responses": {
            **{
                status: {"description": meaning, "headers": headers, "content": content}
                for status, meaning in (ok or {"200": "OK"}).items()
            },
            **{
                code: {
                    "description": (notes or {}).get(code, ERRORS[code]),
                    "content": {"application/json": {"schema": error}},
                }
                for code in errors
            },
        },
    }
    if parameters:
        operation["parameters"] = parameters
    request: dict[str, Any] = {}
    if body is not None:
        request["application/json"] = {"schema": _schema(body, components, "validation")}
    if bodies:
        variants = [_schema(model, components, "validation") for model in bodies]
        request["application/json"] = {"schema": {"oneOf": variants}}
    if upload is not None:
        request["multipart/form-data"] = {"schema": _form_schema(upload, components)}
    if request:
        operation["requestBody"] = {"required": True, "content": request}
    return operation


def _document_aliases(models: dict[str, Any]) -> None:
    """`model` lists the configured aliases (llm-routing.yaml), by kind."""
    table = routing_table()
    for body, kind in (
        (schemas.ChatCompletionRequest, "chat"),
        (schemas.EmbeddingRequest, "embed"),
    ):
        _schema(body, models, "validation")
        model = models[body.__name__]["properties"]["model"]
        model["enum"] = table.names(kind)
        model["description"] = f"A {kind} alias of this deployment."


def add_openai_api(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOKS entry."""
    components = result.setdefault("components", {})
    models = components.setdefault("schemas", {})
    components.setdefault("securitySchemes", {})["WorkspaceApiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A workspace API key (`sk-aisaas-…`): workspace settings or `manage.py apikey create`.",
    }
    common = ("400", "401", "403", "413")
    _document_aliases(models)
    result.setdefault("paths", {}).update(
        {
            "/v1/chat/completions": {
                "post": _operation(
                    models,
                    operation_id="v1_chat_completions",
                    summary="Create a chat completion",
                    description=(
                        "OpenAI's Chat Completions on the workspace's budgets, cache, fallback "
                        "and traces. `model` is an alias (`fast`, `smart`, `reasoning`, "
                        "`extract`). Unknown parameters are refused (400), as OpenAI does; `n` "
                        "must be 1; `seed`, `user`, `top_p`, penalties and `metadata` are "
                        "accepted and not forwarded."
                    ),
                    body=schemas.ChatCompletionRequest,
                    response=schemas.ChatCompletion,
                    errors=(*common, "402", "404", "429", "502", "503"),
                    stream=True,
                )
            },
            "/v1/embeddings": {
                "post": _operation(
                    models,
                    operation_id="v1_embeddings",
                    summary="Create embeddings",
                    description="Vectors from an embedding alias (`embed`); text input only.",
                    body=schemas.EmbeddingRequest,
                    response=schemas.EmbeddingList,
                    errors=(*common, "402", "404", "429", "502", "503"),
                )
            },
            "/v1/models": {
                "get": _operation(
                    models,
                    operation_id="v1_models",
                    summary="List the aliases this key may use",
                    description="Chat aliases with the `chat` scope, `embed` with `embeddings`.",
                    response=schemas.ModelList,
                    errors=("401",),
                )
            },
            **_outcome_paths(models),
            **_document_paths(models),
        }
    )
    return result


def _outcome_paths(models: dict[str, Any]) -> dict[str, Any]:
    from django.conf import settings  # the hook runs with settings; this module may not

    days = settings.OUTCOME_DISPUTE_WINDOW_DAYS
    scope = "Needs a key with the `outcomes` scope (not given to new keys unless chosen)."
    no_scope = {"403": "The key does not have the `outcomes` scope."}
    return {
        "/v1/outcomes": {
            "post": _operation(
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
            "get": _operation(
                models,
                operation_id="v1_outcomes_list",
                summary="List outcomes",
                description=(
                    "The key's workspace's outcomes, newest first, `limit` a page; the next "
                    "page starts `after` the last `id` of this one while `has_more` is true. "
                    f"`external_id` finds one outcome by your id. {scope}"
                ),
                response=schemas.OutcomeList,
                parameters=_query_parameters(schemas.OutcomeListQuery, models),
                errors=("400", "401", "403"),
                tag="Outcomes",
                notes=no_scope,
            ),
        },
        "/v1/outcomes/{outcome_id}": {
            "get": _operation(
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


def _document_paths(models: dict[str, Any]) -> dict[str, Any]:
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
            "post": _operation(
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
            "get": _operation(
                models,
                operation_id="v1_documents_list",
                summary="List documents",
                description=(
                    "The key's workspace's documents, newest first, `limit` a page; the next "
                    "page starts `after` the last `id` of this one while `has_more` is true. "
                    f"{scope}"
                ),
                response=schemas.DocumentList,
                parameters=_query_parameters(schemas.DocumentListQuery, models),
                errors=("400", "401", "403", "429"),
                tag="Documents",
                notes=no_scope,
            ),
        },
        "/v1/documents/search": {
            "post": _operation(
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
                errors=("400", "401", "402", "403", "413", "429", "502", "503"),
                tag="Documents",
                notes=no_scope,
            ),
        },
        "/v1/documents/{document_id}": {
            "get": _operation(
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
            "delete": _operation(
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
