"""Requests in: JSON bodies and query strings checked by pydantic, the first problem answered
as a 400 that names the field the way OpenAI does."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError

from apps.common.jsonlimits import JsonTooDeepError, json_depth_check

from ..schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DocumentListQuery,
    DocumentSearch,
    EmbeddingRequest,
    OutcomeCreate,
    OutcomeListQuery,
)
from ..schemas.responses import ResponseCreate
from .errors import ApiError


def parse_json(raw: bytes, *, exact_numbers: bool = False) -> dict[str, Any]:
    """The body as a JSON object; `exact_numbers` reads numbers with a fraction or an exponent
    as Decimal, not float (money: 0.1 stays 0.1)."""
    try:
        json_depth_check(raw)
    except JsonTooDeepError as exc:
        raise ApiError(400, f"The request body: {exc}", code="invalid_json") from None
    try:
        data = json.loads(raw, parse_float=Decimal if exact_numbers else None)
    # ValueError also covers an integer of more than 4,300 digits; RecursionError, nesting
    # deeper than Python's stack: both once answered 500.
    except (ValueError, RecursionError):
        raise ApiError(
            400,
            "We could not parse the JSON body of your request. Send a JSON object with "
            "Content-Type: application/json.",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return data


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validation_error(exc: ValidationError) -> ApiError:
    """The first problem pydantic found, naming the field the way OpenAI does."""
    error = exc.errors(include_url=False)[0]
    # For unions pydantic names the variant it tried (e.g. "str" or "list[str]"): drop those.
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p in _TYPES)))
    param = _param(loc)
    if error["type"] == "extra_forbidden":
        return ApiError(
            400,
            f"Unrecognized request argument supplied: {param}",
            code="unknown_parameter",
            param=param,
        )
    if error["type"] == "missing":
        return ApiError(
            400,
            f"Missing required parameter: '{param}'.",
            code="missing_required_parameter",
            param=param,
        )
    return ApiError(
        400, f"Invalid value for '{param}': {error['msg']}.", code="invalid_value", param=param
    )


_TYPES = {
    "str",
    "int",
    "float",
    "bool",
    "list",
    "dict",
    "function-after",
    "literal",
    "NamedToolChoice",
}


def chat_body(data: dict[str, Any]) -> ChatCompletionRequest:
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def completion_body(data: dict[str, Any]) -> CompletionRequest:
    try:
        return CompletionRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def response_body(data: dict[str, Any]) -> ResponseCreate:
    try:
        return ResponseCreate.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def embedding_body(data: dict[str, Any]) -> EmbeddingRequest:
    try:
        return EmbeddingRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def parse_query(raw: bytes) -> dict[str, str]:
    """The query string as one value per name (a name given twice is refused, not guessed)."""
    values: dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("latin1"), keep_blank_values=True):
        if name in values:
            raise ApiError(
                400, f"Give the parameter '{name}' once.", code="invalid_value", param=name
            )
        values[name] = value
    return values


def outcome_body(data: dict[str, Any]) -> OutcomeCreate:
    try:
        return OutcomeCreate.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def outcome_query(raw: bytes) -> OutcomeListQuery:
    try:
        return OutcomeListQuery.model_validate(parse_query(raw))
    except ValidationError as exc:
        raise validation_error(exc) from None


def document_query(raw: bytes) -> DocumentListQuery:
    try:
        return DocumentListQuery.model_validate(parse_query(raw))
    except ValidationError as exc:
        raise validation_error(exc) from None


def search_body(data: dict[str, Any]) -> DocumentSearch:
    try:
        return DocumentSearch.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
