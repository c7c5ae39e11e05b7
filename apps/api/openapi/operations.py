"""The pieces every documented /v1 operation is made of: JSON Schemas from the pydantic models,
query and form parameters, the error statuses and the headers every answer carries."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .. import schemas

REF = "#/components/schemas/{model}"
ERRORS = {
    "400": "Invalid request: the message names the field (`param`).",
    "401": "Missing, unknown, revoked or expired API key.",
    "403": "The key's scopes do not allow this endpoint, or the request's `Origin` is not one "
    "the key allows (`origin_not_allowed`).",
    "404": "Not found: an unknown model (alias, synonym or agent) or path id in the key's "
    "workspace; on every route, also the API asked on a host other than the public one "
    "(`wrong_host`).",
    "405": "The path exists but not with this method; `allow` lists its methods.",
    "409": "The request conflicts with what was recorded before; the message says how.",
    "413": "The request body is too large.",
    "429": "Rate limit (per key per minute; `rate_limit_error`, see `retry-after`) or an exhausted "
    "quota (a daily budget or the credit balance: `insufficient_quota`, `x-should-retry: false`, "
    "the scope in `x-aisaas-quota-scope`).",
    "502": "The provider failed (after the retry and the fallback).",
    "503": "No provider could answer right now.",
}
# Every operation can answer these: a bad key, a scope or origin refused, the key's rate limit,
# a method the path does not have, the API asked on a workspace's host.
ALWAYS = ("401", "403", "404", "405", "429")
RATE_HEADERS = {
    f"x-ratelimit-{what}-{unit}": {
        "schema": {"type": "string"},
        "description": f"OpenAI's rate-limit header: the {what} of the key's {unit} per minute"
        if unit == "requests"
        else f"OpenAI's rate-limit header: the {what} of the workspace's tokens per day",
    }
    for what in ("limit", "remaining", "reset")
    for unit in ("requests", "tokens")
}


def schema_ref(model: type[BaseModel], components: dict[str, Any], mode: str) -> dict[str, str]:
    """Register `model` (and the models it uses) as components; return a $ref to it."""
    schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault(model.__name__, schema)
    return {"$ref": REF.format(model=model.__name__)}


def form_schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
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


def query_parameters(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
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


def operation(
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
    stream: type[BaseModel] | None = None,
    events: bool = False,
    ok: dict[str, str] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    notes: dict[str, str] | None = None,
    tag: str = "OpenAI-compatible API",
) -> dict[str, Any]:
    """One operation. `body`: its JSON body, or `bodies`: one of several; `upload`: a
    multipart/form-data body besides. `ok`: its success statuses and what each means (default
    200); `notes`: what an error status means for this operation, where ERRORS says something
    else."""
    error = schema_ref(schemas.Error, components, "serialization")
    content: dict[str, Any] = {
        "application/json": {"schema": schema_ref(response, components, "serialization")}
    }
    if stream is not None:
        chunk = schema_ref(stream, components, "serialization")
        if events:  # the Responses API: named events, each a typed object, and no [DONE]
            typed = {
                "type": "object",
                "required": ["type", "sequence_number"],
                "properties": {"type": {"type": "string"}, "sequence_number": {"type": "integer"}},
            }
            data, what = {"anyOf": [typed, error]}, "A typed event (its `type` names it) as JSON."
        else:
            data = {"anyOf": [chunk, error, {"const": "[DONE]"}]}
            what = f"A {stream.__name__} or an Error as JSON, or [DONE]."
        # One schema per server-sent event (as OpenAPI 3.2's itemSchema).
        content["text/event-stream"] = {
            "schema": {
                "type": "object",
                "required": ["data"],
                "properties": {
                    "event": {"type": "string"},
                    "data": {
                        "type": "string",
                        "description": what,
                        "contentMediaType": "application/json",
                        "contentSchema": data,
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
        **RATE_HEADERS,
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
                for code in sorted({*errors, *ALWAYS})
            },
        },
    }
    if parameters:
        operation["parameters"] = parameters
    request: dict[str, Any] = {}
    if body is not None:
        request["application/json"] = {"schema": schema_ref(body, components, "validation")}
    if bodies:
        variants = [schema_ref(model, components, "validation") for model in bodies]
        request["application/json"] = {"schema": {"oneOf": variants}}
    if upload is not None:
        request["multipart/form-data"] = {"schema": form_schema(upload, components)}
    if request:
        operation["requestBody"] = {"required": True, "content": request}
    return operation
