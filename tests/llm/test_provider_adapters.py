"""The Anthropic and OpenAI adapters, driven through the official SDKs over real loopback HTTP.

No mocks: each test scripts a fake server (tests/fakes) and calls the adapter, so the SDK's
request building, SSE parsing and error classes are exercised exactly as in production.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
import pytest_asyncio

from apps.llm.core.errors import ProviderError
from apps.llm.core.providers.anthropic import AnthropicProvider
from apps.llm.core.providers.base import ProviderCall
from apps.llm.core.providers.openai import OpenAIProvider
from apps.llm.core.types import (
    ChatRequest,
    Message,
    ProviderEvent,
    ProviderUsageEvent,
    ResponseFormat,
    ThinkingEvent,
    TokenEvent,
    Tool,
    ToolCall,
    ToolUseEvent,
    Usage,
)
from tests.fakes import FakeAnthropicServer, FakeOpenAIServer, Fault, Reply, ToolCallScript
from tests.fakes.server import FakeServer

KEY = "sk-test-Zq9SECRETkey01234wxyz"
Provider = AnthropicProvider | OpenAIProvider


@dataclass
class Vendor:
    """A fake server and adapters pointed at it; `make` builds more (closed at teardown)."""

    name: str
    server: FakeServer
    build: Callable[..., Provider]
    made: list[Provider] = field(default_factory=list)

    def make(self, **kwargs: Any) -> Provider:
        provider = self.build(**{"api_key": KEY, "base_url": self.server.base_url, **kwargs})
        self.made.append(provider)
        return provider

    @property
    def provider(self) -> Provider:
        return self.made[0] if self.made else self.make()


def _vendor(name: str, **server_options: Any) -> Vendor:
    if name == "anthropic":
        return Vendor(name, FakeAnthropicServer(**server_options).start(), AnthropicProvider)
    return Vendor(name, FakeOpenAIServer(**server_options).start(), OpenAIProvider)


async def _started(name: str, **server_options: Any) -> AsyncIterator[Vendor]:
    v = _vendor(name, **server_options)
    try:
        yield v
    finally:
        for provider in v.made:
            await provider.aclose()
        v.server.stop()


@pytest_asyncio.fixture(params=["anthropic", "openai"])
async def vendor(request: pytest.FixtureRequest) -> AsyncIterator[Vendor]:
    async for v in _started(request.param):
        yield v


@pytest_asyncio.fixture(params=["anthropic", "openai"])
async def paced(request: pytest.FixtureRequest) -> AsyncIterator[Vendor]:
    """A vendor whose server waits 20 ms between tokens, so a client can stop mid-answer."""
    async for v in _started(request.param, token_delay=0.02):
        yield v


@pytest_asyncio.fixture
async def anthropic_vendor() -> AsyncIterator[Vendor]:
    async for v in _started("anthropic"):
        yield v


@pytest_asyncio.fixture
async def openai_vendor() -> AsyncIterator[Vendor]:
    async for v in _started("openai"):
        yield v


def chat(
    *messages: Message, timeout: float = 5.0, max_tokens: int = 256, **options: Any
) -> ProviderCall:
    request = ChatRequest(
        alias="smart", messages=messages or (Message("user", "hello world"),), **options
    )
    return ProviderCall(request=request, model="model-x", max_tokens=max_tokens, timeout=timeout)


async def collect(events: AsyncIterator[ProviderEvent]) -> list[ProviderEvent]:
    return [event async for event in events]


async def drain(events: AsyncIterator[ProviderEvent], into: list[ProviderEvent]) -> None:
    """Like `collect`, but keeps what arrived before a failure."""
    async for event in events:
        into.append(event)


async def answer(provider: Provider, call: ProviderCall, *, streamed: bool) -> object:
    if streamed:
        return await collect(provider.stream(call))
    return await provider.complete(call)


def texts(events: list[ProviderEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, TokenEvent)]


LONG_REPLY = " ".join(f"word{i}" for i in range(40))


# --- replies -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_complete_echoes_the_prompt_with_usage(vendor: Vendor) -> None:
    # given the default fake reply
    # when
    response = await vendor.provider.complete(chat(Message("user", "hello world")))
    # then
    assert response.text == "Echo: hello world"
    assert response.finish_reason == "stop"
    assert response.model == "model-x"
    assert response.usage == Usage(input_tokens=2, output_tokens=3)
    assert response.provider_request_id == "req_fake0001"


@pytest.mark.asyncio
async def test_complete_counts_cache_reads_and_writes_inside_input(vendor: Vendor) -> None:
    # given a reply that read 100 prompt tokens from the cache and wrote 20
    vendor.server.reply_next(
        Reply(
            text="ok",
            input_tokens=10,
            output_tokens=1,
            cache_read_tokens=100,
            cache_write_tokens=20,
        )
    )
    # when
    response = await vendor.provider.complete(chat())
    # then: the same normalised usage from both vendors' different conventions
    assert response.usage == Usage(
        input_tokens=130, output_tokens=1, cache_read_tokens=100, cache_write_tokens=20
    )


@pytest.mark.asyncio
async def test_complete_parses_tool_calls(vendor: Vendor) -> None:
    # given the model calls a tool
    args = {"city": "Paris", "days": 2, "units": {"temp": "C"}}
    vendor.server.reply_next(
        Reply(text="", tool_calls=(ToolCallScript("get_weather", args, id="t1"),))
    )
    # when
    response = await vendor.provider.complete(chat())
    # then
    assert response.tool_calls == (ToolCall(id="t1", name="get_weather", arguments=args),)
    assert response.finish_reason == "tool_calls"


@pytest.mark.asyncio
async def test_complete_reports_truncation_as_length(vendor: Vendor) -> None:
    # given a max_tokens smaller than the echo
    # when
    response = await vendor.provider.complete(chat(max_tokens=2))
    # then
    assert response.text == "Echo: hello"
    assert response.finish_reason == "length"


@pytest.mark.asyncio
async def test_complete_returns_thinking_apart_from_text(vendor: Vendor) -> None:
    # given a reasoning model
    vendor.server.reply_next(Reply(text="42", thinking="six times seven"))
    # when
    response = await vendor.provider.complete(chat())
    # then
    assert (response.text, response.thinking) == ("42", "six times seven")


# --- requests ----------------------------------------------------------------------------

CONVERSATION = (
    Message("system", "Be brief."),
    Message("user", "Weather in Paris and Rome?"),
    Message(
        "assistant",
        "Checking.",
        tool_calls=(
            ToolCall("c1", "get_weather", {"city": "Paris"}),
            ToolCall("c2", "get_weather", {"city": "Rome"}),
        ),
    ),
    Message("tool", "18C", tool_call_id="c1"),
    Message("tool", "24C", tool_call_id="c2"),
)
WEATHER = Tool(
    "get_weather", "Current weather", {"type": "object", "properties": {"city": {"type": "string"}}}
)


@pytest.mark.asyncio
async def test_anthropic_request_shape(anthropic_vendor: Vendor) -> None:
    # given
    v = anthropic_vendor
    # when
    await v.provider.complete(
        chat(*CONVERSATION, tools=(WEATHER,), tool_choice="required", stop=("END",))
    )
    # then: system on top, tool results as one user turn of tool_result blocks
    body = v.server.last_request.body
    assert body["system"] == "Be brief."
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "c2", "name": "get_weather", "input": {"city": "Rome"}},
        ],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "c2", "content": "24C"},
        ],
    }
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather",
            "input_schema": WEATHER.parameters,
        }
    ]
    assert body["tool_choice"] == {"type": "any"}
    assert body["stop_sequences"] == ["END"]
    assert body["max_tokens"] == 256


@pytest.mark.asyncio
async def test_openai_request_shape(openai_vendor: Vendor) -> None:
    # given
    v = openai_vendor
    # when
    await v.provider.complete(chat(*CONVERSATION, tools=(WEATHER,), tool_choice="get_weather"))
    # then: tool results are role "tool", assistant calls carry JSON-string arguments
    body = v.server.last_request.body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][2]["tool_calls"][1] == {
        "id": "c2",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
    }
    assert body["messages"][3:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
        {"role": "tool", "tool_call_id": "c2", "content": "24C"},
    ]
    assert body["tools"][0]["function"]["parameters"] == WEATHER.parameters
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["max_completion_tokens"] == 256


@pytest.mark.asyncio
async def test_openai_compatible_sends_max_tokens_and_names_itself(openai_vendor: Vendor) -> None:
    # given an OpenAI-compatible server (Ollama, vLLM…) behind the same class
    v = openai_vendor
    provider = v.make(name="openai_compatible")
    v.server.fail_next(Fault.server_error())
    # when
    with pytest.raises(ProviderError) as failed:
        await provider.complete(chat())
    await provider.complete(chat())
    # then
    assert failed.value.provider == "openai_compatible"
    assert v.server.last_request.body["max_tokens"] == 256
    assert "max_completion_tokens" not in v.server.last_request.body


@pytest.mark.asyncio
async def test_json_schema_uses_each_vendors_structured_output(vendor: Vendor) -> None:
    # given a request for a JSON Schema
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    fmt = ResponseFormat(type="json_schema", json_schema=schema, name="card")
    # when
    response = await vendor.provider.complete(chat(response_format=fmt))
    # then: native structured output on both, and the fake answers in kind
    body = vendor.server.last_request.body
    if vendor.name == "anthropic":
        assert body["output_config"]["format"]["type"] == "json_schema"
        assert body["output_config"]["format"]["schema"]["properties"] == schema["properties"]
    else:
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "card", "schema": schema, "strict": False},
        }
    assert json.loads(response.text) == {"title": "hello world"}


@pytest.mark.asyncio
async def test_injected_http_client_carries_the_calls_and_stays_open(vendor: Vendor) -> None:
    # given an httpx2 client of our own (how a test or a proxy plugs in a transport)
    async with httpx2.AsyncClient(headers={"x-injected": "yes"}) as client:
        provider = vendor.make(http_client=client)
        # when
        await provider.complete(chat())
        await provider.aclose()
        # then
        assert vendor.server.last_request.headers["x-injected"] == "yes"
        assert not client.is_closed


# --- streaming ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_stream_yields_one_token_per_word_then_final_usage(vendor: Vendor) -> None:
    # given the default echo
    # when
    events = await collect(vendor.provider.stream(chat(Message("user", "hello big world"))))
    # then
    assert texts(events) == ["Echo:", " hello", " big", " world"]
    final = events[-1]
    assert isinstance(final, ProviderUsageEvent)
    assert final.finish_reason == "stop"
    assert final.usage == Usage(input_tokens=3, output_tokens=4)
    assert final.model == "model-x"
    if vendor.name == "openai":
        assert vendor.server.last_request.body["stream_options"] == {"include_usage": True}


@pytest.mark.asyncio
async def test_stream_emits_thinking_tokens_and_a_complete_tool_call(vendor: Vendor) -> None:
    # given a reply with reasoning, text and a tool call whose JSON arrives in pieces
    args = {"query": "weather in paris tomorrow", "limit": 3}
    vendor.server.reply_next(
        Reply(
            text="Let me check",
            thinking="need data",
            tool_calls=(ToolCallScript("search", args, id="t9"),),
        )
    )
    # when
    events = await collect(vendor.provider.stream(chat()))
    # then
    kinds = [type(e).__name__ for e in events if not isinstance(e, ProviderUsageEvent)]
    assert kinds == ["ThinkingEvent"] * 2 + ["TokenEvent"] * 3 + ["ToolUseEvent"]
    assert "".join(e.text for e in events if isinstance(e, ThinkingEvent)) == "need data"
    tool_uses = [e for e in events if isinstance(e, ToolUseEvent)]
    assert tool_uses == [ToolUseEvent(ToolCall(id="t9", name="search", arguments=args))]
    final = events[-1]
    assert isinstance(final, ProviderUsageEvent)
    assert final.finish_reason == "tool_calls"


@pytest.mark.asyncio
async def test_stream_final_usage_includes_cache_tokens(vendor: Vendor) -> None:
    # given
    vendor.server.reply_next(
        Reply(
            text="ok", input_tokens=5, output_tokens=1, cache_read_tokens=50, cache_write_tokens=7
        )
    )
    # when
    events = await collect(vendor.provider.stream(chat()))
    # then
    final = events[-1]
    assert isinstance(final, ProviderUsageEvent)
    assert final.usage == Usage(
        input_tokens=62, output_tokens=1, cache_read_tokens=50, cache_write_tokens=7
    )


# --- faults ------------------------------------------------------------------------------

FAULTS = [
    pytest.param(Fault.rate_limited(retry_after=2), "rate_limit", True, 429, 2.0, id="429"),
    pytest.param(Fault.server_error(), "error", True, 500, None, id="500"),
    pytest.param(Fault.http(503), "overloaded", True, 503, None, id="503"),
    pytest.param(Fault.overloaded(), "overloaded", True, 529, None, id="529"),
    pytest.param(Fault.http(400), "bad_request", False, 400, None, id="400"),
    pytest.param(Fault.unauthorized(), "auth", False, 401, None, id="401"),
    pytest.param(Fault.http(403), "auth", False, 403, None, id="403"),
    pytest.param(Fault.http(404), "bad_request", False, 404, None, id="404"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize(("fault", "kind", "retryable", "status", "retry_after"), FAULTS)
async def test_http_faults_become_one_provider_error(
    vendor: Vendor,
    streamed: bool,
    fault: Fault,
    kind: str,
    retryable: bool,
    status: int,
    retry_after: float | None,
) -> None:
    # given
    vendor.server.fail_next(fault)
    # when
    with pytest.raises(ProviderError) as failed:
        await answer(vendor.provider, chat(), streamed=streamed)
    # then
    err = failed.value
    assert (err.kind, err.retryable, err.http_status, err.retry_after) == (
        kind,
        retryable,
        status,
        retry_after,
    )
    assert err.provider == vendor.name
    assert "hello world" not in err.message  # never the request


@pytest.mark.asyncio
async def test_retry_after_accepts_fractional_seconds(vendor: Vendor) -> None:
    # given
    vendor.server.fail_next(Fault.rate_limited(retry_after=0.25))
    # when
    with pytest.raises(ProviderError) as failed:
        await vendor.provider.complete(chat())
    # then
    assert failed.value.retry_after == 0.25


@pytest.mark.asyncio
async def test_rejected_key_never_appears_in_the_error(vendor: Vendor) -> None:
    # given a server that knows another key (OpenAI's 401 echoes the key, masked)
    vendor.server.api_key = "sk-the-right-one"
    # when
    with pytest.raises(ProviderError) as failed:
        await vendor.provider.complete(chat())
    # then
    err = failed.value
    assert (err.kind, err.retryable, err.http_status) == ("auth", False, 401)
    for text in (str(err), err.message, repr(err.args)):
        assert KEY not in text
        assert KEY[-4:] not in text
        assert KEY[:8] not in text


@pytest.mark.asyncio
@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
async def test_a_server_slower_than_the_timeout_is_a_retryable_timeout(
    vendor: Vendor, streamed: bool
) -> None:
    # given a server that holds its answer for 2 s, and a 0.3 s timeout
    vendor.server.fail_next(Fault.timeout(hold=2.0))
    started = time.monotonic()
    # when
    with pytest.raises(ProviderError) as failed:
        await answer(vendor.provider, chat(timeout=0.3), streamed=streamed)
    # then
    assert (failed.value.kind, failed.value.retryable) == ("timeout", True)
    assert time.monotonic() - started < 1.5


@pytest.mark.asyncio
async def test_slow_first_token_beyond_the_timeout_fails_before_any_token(vendor: Vendor) -> None:
    # given headers at once, then 1 s of silence, against a 0.3 s timeout
    vendor.server.fail_next(Fault.slow_first_token(1.0))
    events: list[ProviderEvent] = []
    # when
    with pytest.raises(ProviderError) as failed:
        await drain(vendor.provider.stream(chat(timeout=0.3)), events)
    # then: a retryable timeout, and nothing was streamed, so the gateway may still fall back
    assert (failed.value.kind, failed.value.retryable) == ("timeout", True)
    assert texts(events) == []


@pytest.mark.asyncio
async def test_slow_first_token_within_the_timeout_streams_normally(vendor: Vendor) -> None:
    # given
    vendor.server.fail_next(Fault.slow_first_token(0.1))
    # when
    events = await collect(vendor.provider.stream(chat(timeout=2.0)))
    # then
    assert "".join(texts(events)) == "Echo: hello world"


@pytest.mark.asyncio
async def test_drop_after_k_tokens_yields_k_tokens_then_dropped(vendor: Vendor) -> None:
    # given a long answer cut after 3 tokens
    vendor.server.reply_next(Reply(text=LONG_REPLY))
    vendor.server.fail_next(Fault.drop_after(3))
    events: list[ProviderEvent] = []
    # when
    with pytest.raises(ProviderError) as failed:
        await drain(vendor.provider.stream(chat()), events)
    # then
    assert texts(events) == ["word0", " word1", " word2"]
    assert (failed.value.kind, failed.value.retryable) == ("dropped", True)
    assert not any(isinstance(e, ProviderUsageEvent) and e.finish_reason for e in events)


@pytest.mark.asyncio
async def test_an_error_event_mid_stream_is_retryable(vendor: Vendor) -> None:
    # given the vendor reports overload inside a stream that already sent 2 tokens
    vendor.server.reply_next(Reply(text=LONG_REPLY))
    vendor.server.fail_next(Fault.stream_error(2, status=529))
    events: list[ProviderEvent] = []
    # when
    with pytest.raises(ProviderError) as failed:
        await drain(vendor.provider.stream(chat()), events)
    # then: Anthropic names the overload; OpenAI only says server_error
    assert texts(events) == ["word0", " word1"]
    expected = "overloaded" if vendor.name == "anthropic" else "error"
    assert (failed.value.kind, failed.value.retryable) == (expected, True)
    assert failed.value.http_status is None


@pytest.mark.asyncio
async def test_a_refused_connection_is_retryable(vendor: Vendor) -> None:
    # given a server that has gone away
    provider = vendor.provider
    vendor.server.stop()
    # when
    with pytest.raises(ProviderError) as failed:
        await provider.complete(chat(timeout=1.0))
    # then
    assert (failed.value.kind, failed.value.retryable) == ("connection", True)


# --- cancellation ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_closing_the_stream_closes_the_upstream_connection(paced: Vendor) -> None:
    # given a long, paced answer
    paced.server.reply_next(Reply(text=LONG_REPLY))
    stream = paced.provider.stream(chat())
    received: list[str] = []
    # when the consumer stops after 3 tokens
    async for event in stream:
        if isinstance(event, TokenEvent):
            received.append(event.text)
            if len(received) == 3:
                break
    await stream.aclose()
    # then the server saw the client hang up mid-answer
    record = paced.server.last_request
    assert await record.wait_done_async(2.0)
    assert record.client_disconnected
    assert not record.completed
    assert record.tokens_sent < 40


@pytest.mark.asyncio
async def test_cancelling_the_task_closes_the_upstream_connection(paced: Vendor) -> None:
    # given a task streaming a long, paced answer
    paced.server.reply_next(Reply(text=LONG_REPLY))
    received: list[str] = []
    three = asyncio.Event()

    async def consume() -> None:
        async for event in paced.provider.stream(chat()):
            if isinstance(event, TokenEvent):
                received.append(event.text)
                if len(received) == 3:
                    three.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(three.wait(), 2.0)
    # when
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # then
    record = paced.server.last_request
    assert await record.wait_done_async(2.0)
    assert record.client_disconnected
    assert not record.completed
    assert len(received) < 40


# --- embeddings --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_openai_embeddings_are_deterministic_and_in_input_order(
    openai_vendor: Vendor,
) -> None:
    # given
    v = openai_vendor
    # when
    result = await v.provider.embed(
        ["alpha", "beta gamma", "alpha"], model="text-embedding-fake", timeout=5
    )
    # then
    assert result.model == "text-embedding-fake"
    assert [len(vector) for vector in result.vectors] == [8, 8, 8]
    assert result.vectors[0] == result.vectors[2] != result.vectors[1]
    assert result.usage == Usage(input_tokens=4)
    assert v.server.last_request.body["encoding_format"] == "float"


@pytest.mark.asyncio
async def test_anthropic_has_no_embeddings(anthropic_vendor: Vendor) -> None:
    # given
    # when
    with pytest.raises(ProviderError) as failed:
        await anthropic_vendor.provider.embed(["x"], model="any", timeout=1)
    # then: refused locally, nothing sent
    assert (failed.value.kind, failed.value.retryable) == ("bad_request", False)
    assert anthropic_vendor.server.requests == []
