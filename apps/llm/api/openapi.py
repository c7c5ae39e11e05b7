"""The /v1 API in the OpenAPI document that drf-spectacular serves at /api/schema/.

The endpoints are not DRF views (app.py says why), so a spectacular post-processing hook adds
them, with JSON Schemas generated from the pydantic models that validate the requests
(schemas.py): the document cannot drift from the validation, and schemathesis checks the
answers against the response models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from . import schemas

REF = "#/components/schemas/{model}"
ERRORS = {
    "400": "Invalid request: the message names the field (`param`).",
    "401": "Missing, unknown, revoked or expired API key.",
    "402": "A budget (or the credit balance) is exhausted; the message names the scope.",
    "403": "The key's scopes do not allow this endpoint.",
    "404": "Unknown model alias.",
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


def _operation(
    components: dict[str, Any],
    *,
    summary: str,
    description: str,
    operation_id: str,
    response: type[BaseModel],
    body: type[BaseModel] | None = None,
    errors: tuple[str, ...],
    stream: bool = False,
) -> dict[str, Any]:
    error = _schema(schemas.Error, components, "serialization")
    ok: dict[str, Any] = {
        "application/json": {"schema": _schema(response, components, "serialization")}
    }
    if stream:
        chunk = _schema(schemas.ChatCompletionChunk, components, "serialization")
        # One schema per server-sent event (as OpenAPI 3.2's itemSchema): its `data` is the
        # JSON of a chunk, then `[DONE]`; or, when the provider fails mid-stream, an error.
        ok["text/event-stream"] = {
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
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "tags": ["OpenAI-compatible API"],
        "security": [{"WorkspaceApiKey": []}],
        "responses": {
            "200": {
                "description": "OK",
                "headers": {
                    "x-request-id": {"schema": {"type": "string"}},
                    "x-aisaas-overhead-ms": {
                        "schema": {"type": "string"},
                        "description": "Time spent in the gateway, excluding the provider.",
                    },
                },
                "content": ok,
            },
            **{
                code: {
                    "description": ERRORS[code],
                    "content": {"application/json": {"schema": error}},
                }
                for code in errors
            },
        },
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(body, components, "validation")}},
        }
    return operation


def _document_aliases(models: dict[str, Any]) -> None:
    """`model` lists the configured aliases (llm-routing.yaml), by kind."""
    from apps.llm.config import routing_table  # settings are needed: import on use

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
        }
    )
    return result
