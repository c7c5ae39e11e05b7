"""The offline provider: deterministic answers built from the prompt, streamed at a set pace,
cut at max_tokens, valid JSON for schemas, tool calls with valid arguments, exact usage."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from jsonschema import Draft202012Validator

from apps.llm.core.errors import ProviderError
from apps.llm.core.providers.base import Provider, ProviderCall
from apps.llm.core.providers.local import LocalProvider
from apps.llm.core.tokens import count_message_tokens, count_tokens
from apps.llm.core.types import (
    ChatRequest,
    Message,
    ProviderEvent,
    ProviderUsageEvent,
    ResponseFormat,
    ThinkingEvent,
    TokenEvent,
    Tool,
    ToolUseEvent,
)

QUESTION = "What should I pack for a rainy weekend in Amsterdam in October?"

WEATHER = Tool(
    name="get_weather",
    description="Current weather for a city.",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 1},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
)
SEARCH = Tool(
    name="search_docs",
    description="Search the workspace's documents.",
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 20},
            "since": {"type": "string", "format": "date"},
        },
        "required": ["query"],
    },
)


def _call(
    *messages: Message, model: str = "local-smart", max_tokens: int = 1024, **request: object
) -> ProviderCall:
    chat = ChatRequest(alias="smart", messages=messages, **request)  # type: ignore[arg-type]
    return ProviderCall(request=chat, model=model, max_tokens=max_tokens, timeout=30.0)


def _user(text: str) -> Message:
    return Message(role="user", content=text)


def _valid(value: object, schema: dict) -> list[str]:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [error.message for error in validator.iter_errors(value)]


@pytest.fixture
def instant() -> LocalProvider:
    return LocalProvider(tokens_per_second=0)


async def _events(provider: LocalProvider, call: ProviderCall) -> list[ProviderEvent]:
    return [event async for event in provider.stream(call)]


def _final(events: list[ProviderEvent]) -> ProviderUsageEvent:
    """The usage event that closes every complete stream."""
    last = events[-1]
    assert isinstance(last, ProviderUsageEvent)
    return last


@pytest.mark.asyncio
async def test_the_same_request_gets_the_same_answer(instant):
    first = await instant.complete(_call(_user(QUESTION)))
    second = await instant.complete(_call(_user(QUESTION)))

    assert first == second
    assert first.finish_reason == "stop"
    assert "Amsterdam" in first.text


@pytest.mark.asyncio
async def test_the_answer_varies_with_the_prompt_and_the_model(instant):
    answers = {
        (await instant.complete(_call(_user(question), model=model))).text
        for question in (QUESTION, "How do I rotate encryption keys in production?")
        for model in ("local-fast", "local-smart")
    }

    assert len(answers) == 4


@pytest.mark.asyncio
async def test_the_answer_takes_on_the_system_prompts_role(instant):
    response = await instant.complete(
        _call(Message("system", "You are a friendly travel agent. Be brief."), _user(QUESTION))
    )

    assert "a friendly travel agent" in response.text


@pytest.mark.asyncio
async def test_usage_counts_the_input_estimate_and_the_tokens_sent(instant):
    call = _call(Message("system", "You are terse."), _user(QUESTION), tools=(WEATHER,))

    response = await instant.complete(call)

    assert response.usage.input_tokens == count_message_tokens(call.request.messages, (WEATHER,))
    assert response.usage.output_tokens == count_tokens(response.text)


@pytest.mark.asyncio
async def test_stream_sends_tokens_then_usage_matching_complete(instant):
    # given
    call = _call(_user(QUESTION))

    # when
    events = await _events(instant, call)
    response = await instant.complete(call)

    # then
    *tokens, usage = events
    texts = [event.text for event in tokens if isinstance(event, TokenEvent)]
    assert len(texts) == len(tokens) == response.usage.output_tokens
    assert "".join(texts) == response.text
    assert isinstance(usage, ProviderUsageEvent)
    assert usage.usage == response.usage
    assert usage.finish_reason == "stop"
    assert usage.model == "local-smart"


@pytest.mark.asyncio
async def test_reasoning_models_think_first_and_are_billed_for_it(instant):
    events = await _events(instant, _call(_user(QUESTION), model="local-reasoning"))

    kinds = [event.type for event in events]
    thinking = "".join(e.text for e in events if isinstance(e, ThinkingEvent))
    text = "".join(e.text for e in events if isinstance(e, TokenEvent))
    assert kinds.index("token") > kinds.index("thinking")
    assert "thinking" not in kinds[kinds.index("token") :]
    assert _final(events).usage.output_tokens == count_tokens(thinking) + count_tokens(text)


@pytest.mark.asyncio
async def test_stream_is_paced_at_the_configured_rate():
    # given 20 tokens at 100 tokens per second
    provider = LocalProvider(tokens_per_second=100, first_token_latency=0)

    # when
    started = time.monotonic()
    events = await _events(provider, _call(_user(QUESTION), max_tokens=20))
    elapsed = time.monotonic() - started

    # then the last token is due after 19 intervals of 10 ms
    assert sum(isinstance(event, TokenEvent) for event in events) == 20
    assert 0.15 <= elapsed < 1.0


@pytest.mark.asyncio
async def test_complete_takes_as_long_as_the_stream_would():
    provider = LocalProvider(tokens_per_second=200, first_token_latency=0.05)

    started = time.monotonic()
    response = await provider.complete(_call(_user(QUESTION), max_tokens=20))

    assert time.monotonic() - started >= 0.05 + 20 / 200 * 0.9
    assert response.usage.output_tokens == 20


@pytest.mark.asyncio
async def test_max_tokens_cuts_the_answer_with_reason_length(instant):
    full = await instant.complete(_call(_user(QUESTION)))

    cut = await instant.complete(_call(_user(QUESTION), max_tokens=7))
    events = await _events(instant, _call(_user(QUESTION), max_tokens=7))

    assert cut.finish_reason == "length"
    assert cut.usage.output_tokens == count_tokens(cut.text) == 7
    assert full.text.startswith(cut.text)
    assert sum(isinstance(event, TokenEvent) for event in events) == 7
    assert _final(events).finish_reason == "length"


@pytest.mark.asyncio
async def test_a_stop_sequence_ends_the_answer(instant):
    full = await instant.complete(_call(_user(QUESTION)))

    stopped = await instant.complete(_call(_user(QUESTION), stop=("Amsterdam",)))

    assert stopped.text == full.text[: full.text.index("Amsterdam")]
    assert stopped.finish_reason == "stop"


@pytest.mark.asyncio
async def test_closing_the_stream_after_k_tokens_stops_it():
    # given a paced stream of which the caller reads 5 tokens
    provider = LocalProvider(tokens_per_second=200, first_token_latency=0)
    stream = provider.stream(_call(_user(QUESTION)))
    received = []
    async for event in stream:
        received.append(event)
        if len(received) == 5:
            break

    # when
    await stream.aclose()

    # then nothing more comes, not even the usage
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert all(isinstance(event, TokenEvent) for event in received)


@pytest.mark.asyncio
async def test_cancelling_the_reading_task_stops_the_stream():
    # given a slow stream read by a task
    provider = LocalProvider(tokens_per_second=50, first_token_latency=0)
    received: list[ProviderEvent] = []

    async def read() -> None:
        async for event in provider.stream(_call(_user(QUESTION))):
            received.append(event)

    task = asyncio.create_task(read())
    while len(received) < 3:
        await asyncio.sleep(0.005)

    # when
    task.cancel()

    # then
    with pytest.raises(asyncio.CancelledError):
        await task
    count = len(received)
    await asyncio.sleep(0.1)
    assert len(received) == count < 10


SCHEMAS: dict[str, dict] = {
    "person with formats": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "email": {"type": "string", "format": "email"},
            "born": {"type": "string", "format": "date"},
            "age": {"type": "integer", "minimum": 18, "maximum": 99},
            "active": {"type": "boolean"},
        },
        "required": ["name", "email", "born", "age", "active"],
        "additionalProperties": False,
    },
    "unique enum tags": {
        "type": "object",
        "properties": {
            "tags": {
                "type": "array",
                "items": {"enum": ["billing", "bug", "feature", "question"]},
                "minItems": 3,
                "uniqueItems": True,
            }
        },
        "required": ["tags"],
    },
    "numeric bounds": {
        "type": "object",
        "properties": {
            "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "quantity": {"type": "integer", "multipleOf": 5, "minimum": 7, "maximum": 40},
            "ratio": {"type": "number", "multipleOf": 0.1, "minimum": 0.05, "maximum": 0.95},
            "debt": {"type": "integer", "exclusiveMaximum": 0},
        },
        "required": ["score", "quantity", "ratio", "debt"],
    },
    "refs and nullable branches": {
        "$defs": {
            "address": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "postcode": {"type": "string", "pattern": "^[0-9]{4} ?[A-Z]{2}$"},
                },
                "required": ["city", "postcode"],
            }
        },
        "type": "object",
        "properties": {
            "home": {"$ref": "#/$defs/address"},
            "work": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/address"}]},
        },
        "required": ["home", "work"],
    },
    "recursive tree": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string", "minLength": 3},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["label", "children"],
            }
        },
        "$ref": "#/$defs/node",
    },
    "tagged union": {
        "oneOf": [
            {
                "type": "object",
                "properties": {"kind": {"const": "circle"}, "radius": {"type": "number"}},
                "required": ["kind", "radius"],
            },
            {
                "type": "object",
                "properties": {"kind": {"const": "square"}, "side": {"type": "number"}},
                "required": ["kind", "side"],
            },
        ]
    },
    "array of objects": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "title": {"type": "string", "maxLength": 40},
                "url": {"type": "string", "format": "uri"},
                "published": {"type": "string", "format": "date-time"},
                "id": {"type": "string", "format": "uuid"},
            },
            "required": ["title", "url", "published", "id"],
        },
        "minItems": 3,
        "maxItems": 5,
        "uniqueItems": True,
    },
    "tuple and merged parts": {
        "type": "object",
        "properties": {
            "point": {
                "type": "array",
                "prefixItems": [{"type": "number"}, {"type": "number"}],
                "items": False,
            },
            "sku": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"},
            "extra": {
                "allOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"properties": {"b": {"type": ["integer", "null"]}}, "required": ["b"]},
                ]
            },
            "counts": {
                "type": "object",
                "minProperties": 2,
                "additionalProperties": {"type": "integer"},
            },
        },
        "required": ["point", "sku", "extra", "counts"],
    },
}


@pytest.mark.asyncio
@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
async def test_json_schema_replies_validate(instant, schema):
    # given
    call = _call(
        _user("Extract the details for Maria Lopez, who moved to Lisbon in 2021."),
        response_format=ResponseFormat(type="json_schema", json_schema=schema),
    )

    # when
    response = await instant.complete(call)
    again = await instant.complete(call)

    # then
    assert _valid(json.loads(response.text), schema) == []
    assert again.text == response.text
    assert response.finish_reason == "stop"


@pytest.mark.asyncio
async def test_json_object_mode_answers_an_object(instant):
    response = await instant.complete(
        _call(_user(QUESTION), response_format=ResponseFormat(type="json_object"))
    )

    value = json.loads(response.text)
    assert isinstance(value, dict)
    assert "Amsterdam" in value["keywords"]


@pytest.mark.asyncio
async def test_required_tool_choice_calls_a_tool_with_valid_arguments(instant):
    # given
    call = _call(_user("How warm is it in Paris?"), tools=(WEATHER, SEARCH), tool_choice="required")

    # when
    response = await instant.complete(call)
    events = await _events(instant, call)

    # then
    (tool_call,) = response.tool_calls
    assert tool_call.name == "get_weather"
    assert tool_call.arguments["city"] == "Paris"
    assert _valid(tool_call.arguments, WEATHER.parameters) == []
    assert response.finish_reason == "tool_calls"
    assert response.text == ""
    assert [e.call for e in events if isinstance(e, ToolUseEvent)] == [tool_call]
    assert _final(events).finish_reason == "tool_calls"
    assert _final(events).usage == response.usage


@pytest.mark.asyncio
async def test_a_tool_named_by_tool_choice_or_mentioned_is_called(instant):
    named = await instant.complete(
        _call(_user("How warm is it in Paris?"), tools=(WEATHER, SEARCH), tool_choice="search_docs")
    )
    mentioned = await instant.complete(
        _call(_user("Use search docs to find the refund policy."), tools=(WEATHER, SEARCH))
    )

    assert [c.name for c in named.tool_calls] == ["search_docs"]
    assert [c.name for c in mentioned.tool_calls] == ["search_docs"]
    assert _valid(mentioned.tool_calls[0].arguments, SEARCH.parameters) == []
    assert mentioned.usage.output_tokens > 0


@pytest.mark.asyncio
async def test_no_tool_is_called_unless_asked(instant):
    auto = await instant.complete(_call(_user(QUESTION), tools=(WEATHER,)))
    refused = await instant.complete(
        _call(_user("Call get_weather for Paris"), tools=(WEATHER,), tool_choice="none")
    )

    assert auto.tool_calls == refused.tool_calls == ()
    assert auto.finish_reason == refused.finish_reason == "stop"


@pytest.mark.asyncio
async def test_a_tool_result_is_answered_from_its_content(instant):
    # given a tool round trip
    question = _user("How warm is it in Paris?")
    first = await instant.complete(_call(question, tools=(WEATHER,), tool_choice="required"))
    (tool_call,) = first.tool_calls
    result = json.dumps({"temperature_c": 21, "conditions": "sunny"})

    # when the result comes back (with tool_choice still "required")
    response = await instant.complete(
        _call(
            question,
            Message("assistant", "", tool_calls=(tool_call,)),
            Message("tool", result, tool_call_id=tool_call.id),
            tools=(WEATHER,),
            tool_choice="required",
        )
    )

    # then the model answers instead of calling the tool again
    assert response.tool_calls == ()
    assert response.finish_reason == "stop"
    assert "`get_weather`" in response.text
    assert "21" in response.text
    assert "sunny" in response.text


@pytest.mark.asyncio
async def test_a_tool_call_that_does_not_fit_max_tokens_is_not_sent(instant):
    response = await instant.complete(
        _call(_user("Paris?"), tools=(WEATHER,), tool_choice="required", max_tokens=3)
    )

    assert response.tool_calls == ()
    assert response.finish_reason == "length"
    assert response.usage.output_tokens == 3


@pytest.mark.asyncio
async def test_an_empty_conversation_gets_a_greeting(instant):
    response = await instant.complete(_call(_user("hi")))

    assert response.text.startswith("Hello!")
    assert response.finish_reason == "stop"


@pytest.mark.asyncio
async def test_embedding_with_another_model_is_refused(instant):
    with pytest.raises(ProviderError) as raised:
        await instant.embed(["hello"], model="text-embedding-3-small", timeout=5)

    assert raised.value.retryable is False
    assert raised.value.kind == "bad_request"


def test_the_provider_says_it_is_offline():
    provider: Provider = LocalProvider()  # mypy checks it fits the port

    assert (provider.name, provider.offline) == ("local", True)
    with pytest.raises(ValueError, match="negative"):
        LocalProvider(tokens_per_second=-1)
