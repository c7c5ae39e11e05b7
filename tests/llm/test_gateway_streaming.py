"""Streaming through the gateway against the fake vendors (one word — here one token — per
chunk): a stopped stream closes the upstream and settles exactly the tokens produced; a failure
before the first token falls back, one after it ends in `error` + `done{truncated}`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from apps.llm.core.tokens import count_message_tokens, count_tokens
from apps.llm.core.types import (
    ChatRequest,
    DoneEvent,
    ErrorEvent,
    StreamEvent,
    TokenEvent,
    Usage,
)
from tests.fakes import Fault, Reply, tokens

from .conftest import LONG_REPLY, MODELS, MakeScope, Rig, Vendor, ask, both, tokens_of

STORY = ask("Tell me a story")


async def _collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


def _done(events: list[StreamEvent]) -> DoneEvent:
    done = events[-1]
    assert isinstance(done, DoneEvent)
    return done


def _input_tokens(vendor: Vendor, request: ChatRequest) -> int:
    """What a stream stopped early is billed for input: Anthropic reports it first thing (the
    fake counts words); OpenAI only at the end, so the gateway's own estimate stands in."""
    if vendor.name == "anthropic":
        return sum(len(tokens(m.content)) for m in request.messages)
    return count_message_tokens(request.messages)


def test_the_long_reply_is_one_token_per_streamed_word() -> None:
    # the streaming tests below rely on it: k words streamed are k tokens counted
    words = tokens(LONG_REPLY)
    assert all(count_tokens("".join(words[:k])) == k for k in range(len(words) + 1))


@pytest.mark.asyncio
async def test_a_stream_yields_tokens_then_done_and_settles_the_reported_usage(
    rig: Rig, make_scope: MakeScope, vendor: Vendor
) -> None:
    # given
    scope = make_scope({vendor.name: vendor.provider}, user_id=7)
    # when
    events = await _collect(rig.gateway.stream(scope, ask("hello big world")))
    # then
    assert tokens_of(events) == ["Echo:", " hello", " big", " world"]
    done = _done(events)
    assert (done.reason, done.usage) == ("stop", Usage(input_tokens=3, output_tokens=4))
    assert done.response is not None
    assert (done.response.text, done.response.provider) == ("Echo: hello big world", vendor.name)
    assert done.response.cost_micros > 0
    assert await rig.tokens_used(scope) == 7
    assert (rig.record.status, rig.record.output_tokens) == ("ok", 4)
    assert rig.record.trace["params"]["stream"] is True
    await rig.assert_nothing_reserved(scope)


# --- stopping a stream ---------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("k", [1, 4])
async def test_closing_the_stream_after_k_tokens_settles_exactly_k(
    rig: Rig, make_scope: MakeScope, vendor: Vendor, k: int
) -> None:
    # given a long answer, paced so the server is still writing when the client stops
    vendor.server.token_delay = 0.02
    vendor.server.reply_next(Reply(text=LONG_REPLY))
    scope = make_scope({vendor.name: vendor.provider}, user_id=7)
    stream = rig.gateway.stream(scope, STORY)
    assert isinstance(stream, AsyncGenerator)
    received: list[str] = []
    # when the client stops after k tokens
    async for event in stream:
        if isinstance(event, TokenEvent):
            received.append(event.text)
            if len(received) == k:
                break
    await stream.aclose()
    # then exactly k output tokens are recorded and settled
    assert received == tokens(LONG_REPLY)[:k]
    record = rig.record
    assert (record.status, record.finish_reason) == ("cancelled", "cancelled")
    assert (record.input_tokens, record.output_tokens) == (_input_tokens(vendor, STORY), k)
    assert await rig.tokens_used(scope) == record.input_tokens + k
    assert (await rig.usage(scope))["user_day_requests"].used == 1
    assert record.cost_micros > 0
    await rig.assert_nothing_reserved(scope)
    # and the upstream connection was closed mid-answer
    upstream = vendor.server.last_request
    assert await upstream.wait_done_async(2.0)
    assert upstream.client_disconnected
    assert not upstream.completed
    assert upstream.tokens_sent < len(tokens(LONG_REPLY))


@pytest.mark.asyncio
async def test_cancelling_the_consuming_task_after_k_tokens_settles_exactly_k(
    rig: Rig, make_scope: MakeScope, vendor: Vendor
) -> None:
    # given a task streaming a long, paced answer
    k = 3
    vendor.server.token_delay = 0.05
    vendor.server.reply_next(Reply(text=LONG_REPLY))
    scope = make_scope({vendor.name: vendor.provider})
    received: list[str] = []
    reached = asyncio.Event()

    async def consume() -> None:
        async for event in rig.gateway.stream(scope, STORY):
            if isinstance(event, TokenEvent):
                received.append(event.text)
                if len(received) == k:
                    reached.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(reached.wait(), 2.0)
    # when the task is cancelled (a client disconnect, a run cancelled)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # then
    assert received == tokens(LONG_REPLY)[:k]
    record = rig.record
    assert (record.status, record.input_tokens, record.output_tokens) == (
        "cancelled",
        _input_tokens(vendor, STORY),
        k,
    )
    assert await rig.tokens_used(scope) == record.input_tokens + k
    await rig.assert_nothing_reserved(scope)
    upstream = vendor.server.last_request
    assert await upstream.wait_done_async(2.0)
    assert upstream.client_disconnected
    assert not upstream.completed


# --- failures ------------------------------------------------------------------------------

MID_STREAM = [
    pytest.param(Fault.drop_after(3), {"dropped"}, id="drop"),
    pytest.param(Fault.stream_error(3), {"overloaded", "error"}, id="error-event"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("fault", "codes"), MID_STREAM)
async def test_a_failure_after_the_first_token_is_truncated_never_a_fallback(
    rig: Rig, make_scope: MakeScope, pair: tuple[Vendor, Vendor], fault: Fault, codes: set[str]
) -> None:
    # given a primary that fails after 3 tokens, and a healthy fallback
    primary, fallback = pair
    primary.server.reply_next(Reply(text=LONG_REPLY))
    primary.server.fail_next(fault)
    scope = make_scope(**both(pair))
    # when
    events = await _collect(rig.gateway.stream(scope, STORY))
    # then the 3 tokens, an error, and a truncated end — never a silent clean end
    assert tokens_of(events) == tokens(LONG_REPLY)[:3]
    error, done = events[-2:]
    assert isinstance(error, ErrorEvent)
    assert error.code in codes
    assert error.message == "The answer was cut off by a provider error."
    assert isinstance(done, DoneEvent)
    assert (done.reason, done.usage.output_tokens) == ("truncated", 3)
    assert (primary.calls, fallback.calls) == (1, 0)
    record = rig.record
    assert (record.status, record.finish_reason, record.fallback_used) == (
        "truncated",
        "truncated",
        False,
    )
    assert (record.provider, record.output_tokens) == (primary.name, 3)
    assert await rig.tokens_used(scope) == record.input_tokens + 3
    await rig.assert_nothing_reserved(scope)


FIRST_TOKEN = [
    pytest.param(Fault.server_error(), id="500"),
    pytest.param(Fault.rate_limited(retry_after=0), id="429"),
    pytest.param(Fault.timeout(hold=3.0), id="timeout"),
    pytest.param(Fault.slow_first_token(3.0), id="slow-first-token"),
    pytest.param(Fault.drop_after(0), id="drop-before-first-token"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("fault", FIRST_TOKEN)
async def test_a_failure_before_the_first_token_retries_then_falls_back(
    rig: Rig, make_scope: MakeScope, pair: tuple[Vendor, Vendor], fault: Fault
) -> None:
    # given a primary that fails twice before sending any token
    primary, fallback = pair
    primary.server.fail_next(fault, times=2)
    scope = make_scope(**both(pair), timeout=0.25)
    # when
    events = await _collect(rig.gateway.stream(scope, ask("hello world")))
    # then the caller sees only the fallback's answer
    assert "".join(tokens_of(events)) == "Echo: hello world"
    assert not any(isinstance(e, ErrorEvent) for e in events)
    done = _done(events)
    assert done.response is not None
    assert (done.reason, done.response.fallback_used, done.response.provider) == (
        "stop",
        True,
        fallback.name,
    )
    assert done.response.model == MODELS[fallback.name]
    assert (primary.calls, fallback.calls) == (2, 1)
    assert (rig.record.status, rig.record.fallback_used) == ("ok", True)
    await rig.assert_nothing_reserved(scope)


@pytest.mark.asyncio
async def test_a_cached_answer_is_replayed_as_a_stream(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor
) -> None:
    # given an answer in the workspace's cache
    scope = make_scope({"openai": openai_fake.provider})
    first = await rig.gateway.chat(scope, ask("What is our refund policy?"))
    # when the same request is streamed
    events = await _collect(rig.gateway.stream(scope, ask("What is our refund policy?")))
    # then
    assert "".join(tokens_of(events)) == first.text
    done = _done(events)
    assert done.response is not None
    assert (done.response.cached, done.response.cost_micros) == (True, 0)
    assert openai_fake.calls == 1
    await rig.assert_nothing_reserved(scope)
