"""Shared by the gateway tests (test_gateway_*.py): waiting on a condition, a clock moved by
hand, and the bad requests every entry point refuses before anything is reserved or sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from apps.llm.core.context import CallScope, Limits
from apps.llm.core.errors import (
    InvalidRequestError,
    UnknownAliasError,
)
from apps.llm.core.gateway import Gateway
from apps.llm.core.types import (
    ChatRequest,
    Message,
    ResponseFormat,
    StreamEvent,
    Tool,
)

from .conftest import ask


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


class ManualClock:
    """A monotonic clock that moves only when told (`CircuitBreaker(clock=…)`)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


LONG = "word " * 200
INVALID_TOOL_SCHEMA = {"type": "nope"}


def nested_schema(levels: int) -> dict[str, Any]:
    """An object schema `levels` objects deep (each level two JSON levels)."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


BAD_INPUT = [
    pytest.param(
        {"alias": "summarize"},
        UnknownAliasError,
        "alias",
        "Unknown model alias “summarize”",
        id="unknown-alias",
    ),
    pytest.param(
        {"messages": ()}, InvalidRequestError, "messages", "at least one message", id="no-messages"
    ),
    pytest.param(
        {"messages": (Message("robot", "hi"),)},  # type: ignore[arg-type]
        InvalidRequestError,
        "messages[0].role",
        "messages[0].role must be system, user, assistant or tool",
        id="bad-role",
    ),
    pytest.param(
        {"messages": (Message("user", None),)},  # type: ignore[arg-type]
        InvalidRequestError,
        "messages[0].content",
        "messages[0].content must be text",
        id="content-not-text",
    ),
    pytest.param(
        {"messages": (Message("user", "weather?"), Message("tool", "18C"))},
        InvalidRequestError,
        "messages[1].tool_call_id",
        "messages[1] is a tool result without tool_call_id",
        id="tool-without-call-id",
    ),
    pytest.param(
        {"messages": (Message("user", LONG),)},
        InvalidRequestError,
        "messages",
        "the limit is 50",
        id="oversized-input",
    ),
    pytest.param(
        {"response_format": ResponseFormat(type="json_schema", json_schema={"type": "objekt"})},
        InvalidRequestError,
        "response_format",
        "response_format.json_schema is not a valid JSON Schema",
        id="invalid-json-schema",
    ),
    pytest.param(
        {"response_format": ResponseFormat(type="json_schema", json_schema=None)},
        InvalidRequestError,
        "response_format",
        "response_format.json_schema must be a JSON Schema object",
        id="missing-json-schema",
    ),
    pytest.param(
        {"tools": (Tool("lookup", "Look something up", INVALID_TOOL_SCHEMA),)},
        InvalidRequestError,
        "tools",
        "tools[lookup].parameters is not a valid JSON Schema",
        id="invalid-tool-schema",
    ),
    pytest.param(
        {"response_format": ResponseFormat(type="json_schema", json_schema=nested_schema(100))},
        InvalidRequestError,
        "response_format",
        "response_format nests more than 64 levels deep",
        id="deep-json-schema",
    ),
    pytest.param(
        {"response_format": ResponseFormat(type="json_schema", json_schema=nested_schema(100_000))},
        InvalidRequestError,
        "response_format",
        "response_format nests more than 64 levels deep",
        id="very-deep-json-schema",
    ),
    pytest.param(
        {"tools": (Tool("lookup", "Look something up", nested_schema(100)),)},
        InvalidRequestError,
        "tools",
        "tools[lookup] nests more than 64 levels deep",
        id="deep-tool-schema",
    ),
    pytest.param(
        {"max_tokens": 0}, InvalidRequestError, "max_tokens", "between 1 and 100", id="max-tokens-0"
    ),
    pytest.param(
        {"max_tokens": 101},
        InvalidRequestError,
        "max_tokens",
        "between 1 and 100",
        id="max-tokens-over-limit",
    ),
    pytest.param(
        {"temperature": 2.5},
        InvalidRequestError,
        "temperature",
        "temperature must be between 0 and 2",
        id="temperature-high",
    ),
    pytest.param(
        {"temperature": -0.1},
        InvalidRequestError,
        "temperature",
        "temperature must be between 0 and 2",
        id="temperature-negative",
    ),
]
BAD_INPUT_LIMITS = Limits(max_tokens=100, max_input_tokens=50)


def bad(changes: dict[str, Any]) -> ChatRequest:
    return replace(ask("hello world"), **changes)


async def answer(
    gateway: Gateway, scope: CallScope, request: ChatRequest, *, streamed: bool
) -> object:
    if not streamed:
        return await gateway.chat(scope, request)
    events: list[StreamEvent] = []
    stream: AsyncIterator[StreamEvent] = gateway.stream(scope, request)
    async for event in stream:
        events.append(event)
    return events
