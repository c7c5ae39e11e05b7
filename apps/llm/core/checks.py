"""Request checks: malformed input is refused before anything is reserved or sent, with an
error that names the field. Plain Python."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from .context import Limits
from .errors import InvalidRequestError
from .tokens import count_message_tokens, count_tokens
from .types import ChatRequest, EmbedRequest

MAX_TOKENS_CEILING = 65_536
MAX_EMBED_INPUTS = 2048


def check_chat_request(request: ChatRequest, limits: Limits) -> int:
    """Refuse a malformed chat request with an error naming the field; return its input
    token estimate (what the reservation counts)."""
    if not request.messages:
        raise InvalidRequestError("Send at least one message.", field="messages")
    for index, message in enumerate(request.messages):
        if message.role not in ("system", "user", "assistant", "tool"):
            raise InvalidRequestError(
                f"messages[{index}].role must be system, user, assistant or tool.",
                field=f"messages[{index}].role",
            )
        if not isinstance(message.content, str):
            raise InvalidRequestError(
                f"messages[{index}].content must be text.", field=f"messages[{index}].content"
            )
        if message.role == "tool" and not message.tool_call_id:
            raise InvalidRequestError(
                f"messages[{index}] is a tool result without tool_call_id.",
                field=f"messages[{index}].tool_call_id",
            )
    if request.max_tokens is not None and not 1 <= request.max_tokens <= min(
        limits.max_tokens, MAX_TOKENS_CEILING
    ):
        raise InvalidRequestError(
            f"max_tokens must be between 1 and {min(limits.max_tokens, MAX_TOKENS_CEILING)}.",
            field="max_tokens",
        )
    if request.temperature is not None and not 0 <= request.temperature <= 2:
        raise InvalidRequestError("temperature must be between 0 and 2.", field="temperature")
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema":
        if not isinstance(fmt.json_schema, dict):
            raise InvalidRequestError(
                "response_format.json_schema must be a JSON Schema object.",
                field="response_format",
            )
        try:
            jsonschema.Draft202012Validator.check_schema(fmt.json_schema)
        except jsonschema.SchemaError as exc:
            raise InvalidRequestError(
                f"response_format.json_schema is not a valid JSON Schema: {exc.message}",
                field="response_format",
            ) from exc
    for tool in request.tools:
        try:
            jsonschema.Draft202012Validator.check_schema(tool.parameters)
        except jsonschema.SchemaError as exc:
            raise InvalidRequestError(
                f"tools[{tool.name}].parameters is not a valid JSON Schema: {exc.message}",
                field="tools",
            ) from exc
    estimate = count_message_tokens(request.messages, request.tools)
    if estimate > limits.max_input_tokens:
        raise InvalidRequestError(
            f"The input is about {estimate} tokens; the limit is {limits.max_input_tokens}.",
            field="messages",
        )
    return estimate


def check_embed_request(request: EmbedRequest, limits: Limits) -> int:
    """Refuse malformed embedding input; return its token estimate."""
    if not request.inputs:
        raise InvalidRequestError("Send at least one text to embed.", field="input")
    if len(request.inputs) > MAX_EMBED_INPUTS:
        raise InvalidRequestError(
            f"Embed at most {MAX_EMBED_INPUTS} texts per call.", field="input"
        )
    for index, text in enumerate(request.inputs):
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequestError(
                f"input[{index}] must be non-empty text.", field=f"input[{index}]"
            )
    estimate = sum(count_tokens(text) for text in request.inputs)
    limit = limits.max_input_tokens
    if estimate > limit:
        raise InvalidRequestError(
            f"The input is about {estimate} tokens; the limit is {limit}.",
            field="input",
        )
    return estimate


def json_error(text: str, schema: dict[str, Any] | None) -> str | None:
    """Why `text` is not a JSON value satisfying `schema` (any object when None), or None."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg} at position {exc.pos})"
    if schema is None:
        return None if isinstance(value, dict) else "expected a JSON object"
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(value)
    )
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    return f"{error.message} at {where}"
