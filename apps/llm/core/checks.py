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
# JSON Schema checking, the call record (dataclasses.asdict copies values) and trace storage
# recurse per level: a response_format schema 100 levels deep overflowed the stack (a 500).
# Real schemas nest a few levels; OpenAI's structured outputs allow ten.
MAX_JSON_DEPTH = 64


def json_depth(value: Any, *, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply `value` nests dicts, lists and tuples (a scalar: 0), walked without recursion;
    the walk stops once past `limit` (so a cycle ends too) and answers limit + 1."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        if depth > limit:
            return limit + 1
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _shallow(value: Any, field: str) -> None:
    depth = json_depth(value)
    if depth > MAX_JSON_DEPTH:
        raise InvalidRequestError(
            f"{field} nests more than {MAX_JSON_DEPTH} levels deep.", field=field.split("[")[0]
        )


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
        _shallow(fmt.json_schema, "response_format")
        try:
            jsonschema.Draft202012Validator.check_schema(fmt.json_schema)
        except jsonschema.SchemaError as exc:
            raise InvalidRequestError(
                f"response_format.json_schema is not a valid JSON Schema: {exc.message}",
                field="response_format",
            ) from exc
    _shallow(dict(request.metadata), "metadata")
    for tool in request.tools:
        _shallow(tool.parameters, f"tools[{tool.name}]")
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
