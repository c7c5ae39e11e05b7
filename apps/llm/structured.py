"""Structured outputs from a pydantic model: its JSON Schema goes to the gateway (which uses the
provider's JSON mode, validates server-side and retries once), and the validated reply comes
back as an instance of the model."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from .core.errors import StructuredOutputError
from .core.types import ChatResponse, ResponseFormat

M = TypeVar("M", bound=BaseModel)


def response_format_for(model: type[BaseModel]) -> ResponseFormat:
    """The ResponseFormat asking for a reply that validates as `model`."""
    return ResponseFormat(
        type="json_schema", json_schema=model.model_json_schema(), name=model.__name__
    )


def parse_response(model: type[M], response: ChatResponse) -> M:
    """The reply as a `model` instance (the gateway already checked it against the schema)."""
    try:
        return model.model_validate(response.parsed)
    except ValueError as exc:
        raise StructuredOutputError(f"The reply does not fit {model.__name__}: {exc}") from exc
