"""The /v1 API (OpenAI-compatible endpoints, outcomes and documents) in the OpenAPI document
that drf-spectacular serves at /api/schema/.

The endpoints are not DRF views (app.py says why), so a spectacular post-processing hook adds
them, with JSON Schemas generated from the pydantic models that validate the requests
(schemas.py): the document cannot drift from the validation, and schemathesis checks the
answers against the response models.
"""

from __future__ import annotations

from typing import Any

from apps.llm.services import routing_table

from .. import schemas
from ..schemas.responses import Response, ResponseCreate, ResponseDeleted
from .operations import REF, operation, schema_ref
from .resources import document_paths, outcome_paths


def _document_aliases(models: dict[str, Any]) -> None:
    """`model` lists the configured aliases (llm-routing.yaml), by kind; any other text is a
    workspace's synonym for one, or (chat and responses) `agent:<slug>`."""
    table = routing_table()
    for body, kind in (
        (schemas.ChatCompletionRequest, "chat"),
        (schemas.CompletionRequest, "chat"),
        (ResponseCreate, "chat"),
        (schemas.EmbeddingRequest, "embed"),
    ):
        schema_ref(body, models, "validation")
        model = models[body.__name__]["properties"]["model"]
        model["anyOf"] = [{"enum": table.names(kind)}, {"type": "string", "maxLength": 100}]
        model.pop("type", None)
        model["description"] = (
            f"A {kind} alias of this deployment, or the workspace's synonym for one"
            + (
                ", or `agent:<slug>`."
                if body in (schemas.ChatCompletionRequest, ResponseCreate)
                else "."
            )
        )


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
    model_call = ("400", "404", "413", "502", "503")
    _document_aliases(models)
    paths = {
        "/v1/chat/completions": {
            "post": operation(
                models,
                operation_id="v1_chat_completions",
                summary="Create a chat completion",
                description=(
                    "OpenAI's Chat Completions on the workspace's budgets, cache, fallback "
                    "and traces. `model` is an alias (`fast`, `smart`, `reasoning`, `extract`), "
                    "a workspace synonym or `agent:<slug>`. Unknown parameters are refused "
                    "(400), as OpenAI does; `n` must be 1; the legacy `functions` / "
                    "`function_call` map onto tools; `seed`, `user`, `top_p`, penalties, "
                    "`metadata`, `verbosity`, `prompt_cache_key`, `safety_identifier`, "
                    "`prediction` and `web_search_options` are accepted and not forwarded. "
                    "Streamed tool calls carry their arguments in pieces."
                ),
                body=schemas.ChatCompletionRequest,
                response=schemas.ChatCompletion,
                errors=model_call,
                stream=schemas.ChatCompletionChunk,
            )
        },
        "/v1/completions": {
            "post": operation(
                models,
                operation_id="v1_completions",
                summary="Create a text completion (legacy)",
                description=(
                    "OpenAI's legacy Completions: the prompt (a text, or cl100k_base token "
                    "ids) is answered as one user turn by a chat alias. `n`/`best_of` must be "
                    "1; `echo`, `suffix` and `logprobs` are refused."
                ),
                body=schemas.CompletionRequest,
                response=schemas.TextCompletion,
                errors=model_call,
                stream=schemas.TextCompletion,
            )
        },
        "/v1/responses": {
            "post": operation(
                models,
                operation_id="v1_responses_create",
                summary="Create a response",
                description=(
                    "OpenAI's Responses API over the same gateway path as chat completions: "
                    "`input` as text or items (messages, `function_call`, "
                    "`function_call_output`), `instructions`, function tools and "
                    "`tool_choice`, `text.format` (json_schema), `max_output_tokens`, "
                    "`stream` (typed events), `previous_response_id` and `store` (default "
                    "true: kept in the workspace for its plan's trace retention). Hosted tools, "
                    "`background`, `conversation` and stored prompts are refused (400)."
                ),
                body=ResponseCreate,
                response=Response,
                errors=model_call,
                stream=Response,
                events=True,
                notes={
                    "404": "Unknown model, or no stored response `previous_response_id` in "
                    "the key's workspace."
                },
            )
        },
        "/v1/responses/{response_id}": {
            method: operation(
                models,
                operation_id=f"v1_responses_{name}",
                summary=summary,
                description=(
                    f"{summary} of the key's workspace (keys with `chat` or `agents`); "
                    "another workspace's id is 404."
                ),
                response=answer,
                parameters=[
                    {
                        "name": "response_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 64},
                    }
                ],
                errors=("404",),
                notes={"404": "No stored response with this id in the key's workspace."},
            )
            for method, name, summary, answer in (
                ("get", "retrieve", "A stored response", Response),
                ("delete", "delete", "Delete a stored response", ResponseDeleted),
            )
        },
        "/v1/embeddings": {
            "post": operation(
                models,
                operation_id="v1_embeddings",
                summary="Create embeddings",
                description=(
                    "Vectors from an embedding alias (`embed`): texts, or cl100k_base token "
                    "arrays (decoded with the bundled tokenizer). `dimensions` shortens the "
                    "vectors of models trained for it (text-embedding-3-*) and is refused for "
                    "others."
                ),
                body=schemas.EmbeddingRequest,
                response=schemas.EmbeddingList,
                errors=model_call,
            )
        },
        "/v1/models": {
            "get": operation(
                models,
                operation_id="v1_models",
                summary="List the models this key may use",
                description=(
                    "Chat aliases with the `chat` scope, `embed` with `embeddings`, the "
                    "workspace's synonyms for them, and `agent:<slug>` with `agents`."
                ),
                response=schemas.ModelList,
                errors=(),
            )
        },
        "/v1/models/{model_id}": {
            "get": operation(
                models,
                operation_id="v1_models_retrieve",
                summary="Retrieve a model",
                description="One of the names `GET /v1/models` lists; any other is 404.",
                response=schemas.ModelInfo,
                parameters=[
                    {
                        "name": "model_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 100},
                    }
                ],
                errors=("404",),
                notes={"404": "Not a model this key may use."},
            )
        },
        **outcome_paths(models),
        **document_paths(models),
    }
    for path, operations in paths.items():
        operations["options"] = _preflight(path, sorted(operations))
    result.setdefault("paths", {}).update(paths)
    return result


def _preflight(path: str, methods: list[str]) -> dict[str, Any]:
    """OPTIONS: a CORS preflight (with `Origin` and `Access-Control-Request-Method`) or a
    plain question for the methods."""
    return {
        "operationId": "v1_options_"
        + path.strip("/").replace("/", "_").replace("{", "").replace("}", ""),
        "summary": "CORS preflight",
        "description": (
            f"{', '.join(m.upper() for m in methods)} and OPTIONS. A browser's preflight is "
            "answered with the CORS headers when an active API key lists its origin (none "
            "by default); the request that follows is checked against its own key."
        ),
        "tags": ["OpenAI-compatible API"],
        "security": [],
        "responses": {
            "204": {
                "description": "Allowed (or not a preflight): `allow` lists the methods.",
                "headers": {
                    "allow": {"schema": {"type": "string"}},
                    "access-control-allow-origin": {"schema": {"type": "string"}},
                },
            },
            "403": {
                "description": "No active key allows this origin, or the method is not one "
                "of the path's.",
                "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
            },
        },
    }
