"""The OpenAI-compatible API through the official `openai` SDK, against daphne and a fake
upstream: answers, streams, tools, JSON, embeddings, every error status with the exception the
SDK raises for it, tenant isolation, and a disconnect that stops the upstream mid-stream."""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import httpx2 as httpx
import openai
import pytest
from django.utils import timezone

from apps.workspaces.api_keys import api_key_revoke
from tests.asgi_server import AsgiServer, run_committed
from tests.fakes import FakeOpenAIServer, Fault, Reply, ToolCallScript

from .conftest import Key, MakeKey, call_logs

pytestmark = pytest.mark.django_db

Client = Callable[[Key], openai.OpenAI]
LONG = " ".join(["the", "cat", "sat", "on", "the", "mat"] * 20)


def ask(text: str = "Say hello.") -> Any:  # the SDK's message TypedDicts
    """One user message, made unique: the test Redis outlives the session, and an exact-cache
    hit from an earlier run would never reach the upstream."""
    return [{"role": "user", "content": f"{text} [{unique()}]"}]


def unique() -> str:
    return uuid.uuid4().hex[:10]


# --- answers ------------------------------------------------------------------------------


def test_a_completion_through_the_sdk(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    key = make_key()
    upstream.reply_next(Reply(text="Hello from upstream.", input_tokens=12, output_tokens=4))

    request_id = f"req-{unique()}"
    raw = client_for(key).chat.completions.with_raw_response.create(
        model="fast", messages=ask(), max_tokens=50, extra_headers={"x-request-id": request_id}
    )
    reply = raw.parse()

    assert reply.choices[0].message.content == "Hello from upstream."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "fast"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (12, 4)
    assert raw.headers["x-request-id"] == request_id
    overhead = float(raw.headers["x-aisaas-overhead-ms"])
    assert 0 < overhead < 1000
    # the upstream got the platform's key and the alias's model, never the client's key
    seen = upstream.last_request
    assert seen.body["model"] == "gpt-4.1-mini"
    assert key.secret not in json.dumps(seen.headers)
    # one call-log row, attributed to the key
    [log] = call_logs(request_id)
    assert (log.actor_type, log.actor_id, log.feature, log.status) == (
        "api_key",
        str(key.row.pk),
        "api.chat",
        "ok",
    )
    assert log.workspace_id == key.workspace.pk
    assert (log.input_tokens, log.output_tokens) == (12, 4)


def test_a_stream_with_usage(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    key = make_key()
    upstream.reply_next(Reply(text="one two three four", input_tokens=9, output_tokens=4))

    stream = client_for(key).chat.completions.create(
        model="smart",
        messages=ask(),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (9, 4)
    assert {c.model for c in chunks} == {"smart"}


def test_tool_calls_come_back_in_openais_shape_both_ways(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    key = make_key()
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    call = ToolCallScript(name="get_weather", arguments={"city": "Oslo"}, id="call_1")
    upstream.reply_next(Reply(text="", tool_calls=(call,), finish="tool_calls"))
    upstream.reply_next(Reply(text="", tool_calls=(call,), finish="tool_calls"))
    client = client_for(key)

    reply = client.chat.completions.create(
        model="smart", messages=ask("Weather in Oslo?"), tools=tools, tool_choice="auto"
    )
    streamed = list(
        client.chat.completions.create(
            model="smart", messages=ask("Weather in Oslo, again?"), tools=tools, stream=True
        )
    )

    [made] = reply.choices[0].message.tool_calls or []
    assert made.type == "function"
    assert (made.id, made.function.name, json.loads(made.function.arguments)) == (
        "call_1",
        "get_weather",
        {"city": "Oslo"},
    )
    assert reply.choices[0].finish_reason == "tool_calls"
    # streamed as providers do: the call named first, its arguments in several pieces
    deltas = [tc for c in streamed if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert (deltas[0].id, deltas[0].function and deltas[0].function.name) == (
        "call_1",
        "get_weather",
    )
    assert {d.index for d in deltas} == {0}
    assert all(d.id is None for d in deltas[1:])
    pieces = [d.function.arguments for d in deltas if d.function and d.function.arguments]
    assert len(pieces) > 1
    assert json.loads("".join(pieces)) == {"city": "Oslo"}
    assert [r.body["tools"][0]["function"]["name"] for r in upstream.requests[-2:]] == [
        "get_weather",
        "get_weather",
    ]
    # and the result goes back as a tool message
    follow_up = client.chat.completions.create(
        model="smart",
        messages=[
            *ask("Weather in Oslo?"),
            {"role": "assistant", "content": None, "tool_calls": [cast(Any, made.model_dump())]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 12 °C"},
        ],
    )
    assert follow_up.choices[0].message.content
    sent = upstream.last_request.body["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 12 °C"}
    assert sent[-2]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_json_schema_output_is_valid_json(make_key: MakeKey, client_for: Client) -> None:
    key = make_key()
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }

    reply = client_for(key).chat.completions.create(
        model="extract",
        messages=ask("Ada, 36"),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True},
        },
    )

    value = json.loads(reply.choices[0].message.content or "")
    assert set(value) == {"name", "age"}
    assert isinstance(value["age"], int)


def test_embeddings_as_floats_and_as_base64(make_key: MakeKey, client_for: Client) -> None:
    key = make_key()
    client = client_for(key)

    floats = client.embeddings.create(
        model="embed", input=["alpha", "beta"], encoding_format="float"
    )
    default = client.embeddings.create(model="embed", input="alpha")  # the SDK asks for base64

    assert [d.index for d in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) == 8  # the fake upstream's dimension
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding)
    assert floats.model == "embed"
    assert floats.usage.prompt_tokens > 0


def test_models_lists_the_aliases_the_key_may_use(make_key: MakeKey, client_for: Client) -> None:
    both = client_for(make_key()).models.list()
    chat_only = client_for(make_key(scopes=["chat"])).models.list()

    assert {m.id for m in both.data} >= {"fast", "smart", "reasoning", "extract", "embed"}
    assert "embed" not in {m.id for m in chat_only.data}
    assert "fast" in {m.id for m in chat_only.data}


# --- errors, each with the SDK's exception type --------------------------------------------


def test_a_wrong_key_is_401(api_server: AsgiServer) -> None:
    client = openai.OpenAI(
        api_key="sk-aisaas-not-a-real-key", base_url=api_server.url("/v1"), max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as failed:
        client.chat.completions.create(model="fast", messages=ask())
    assert failed.value.status_code == 401
    assert failed.value.code == "invalid_api_key"


def test_no_key_is_401_and_says_how_to_send_one(http: httpx.Client) -> None:
    response = http.post("/chat/completions", json={"model": "fast", "messages": ask()})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    assert "Authorization: Bearer" in response.json()["error"]["message"]


def test_a_revoked_key_is_401(make_key: MakeKey, client_for: Client) -> None:
    key = make_key()
    client = client_for(key)
    client.chat.completions.create(model="fast", messages=ask())
    run_committed(lambda: api_key_revoke(api_key=key.row))

    with pytest.raises(openai.AuthenticationError) as failed:
        client.chat.completions.create(model="fast", messages=ask())
    assert failed.value.code == "revoked_api_key"


def test_an_expired_key_is_401(make_key: MakeKey, client_for: Client) -> None:
    key = make_key(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(openai.AuthenticationError) as failed:
        client_for(key).chat.completions.create(model="fast", messages=ask())
    assert failed.value.code == "expired_api_key"
    assert "expired" in str(failed.value)


def test_a_key_without_the_scope_is_403(make_key: MakeKey, client_for: Client) -> None:
    key = make_key(scopes=["chat"])
    with pytest.raises(openai.PermissionDeniedError) as failed:
        client_for(key).embeddings.create(model="embed", input="x")
    assert failed.value.code == "insufficient_scope"


def test_an_invalid_request_is_400_naming_the_field(make_key: MakeKey, client_for: Client) -> None:
    with pytest.raises(openai.BadRequestError) as failed:
        client_for(make_key()).chat.completions.create(model="fast", messages=ask(), temperature=7)
    assert failed.value.param == "temperature"


def test_an_unknown_alias_is_404(make_key: MakeKey, client_for: Client) -> None:
    with pytest.raises(openai.NotFoundError) as failed:
        client_for(make_key()).chat.completions.create(model="gpt-4o", messages=ask())
    assert failed.value.code == "model_not_found"
    assert "fast" in str(failed.value)  # the message lists the aliases


def test_an_exhausted_budget_is_insufficient_quota_naming_the_scope_and_not_retried(
    make_key: MakeKey,
    client_for: Client,
    workspace_limits: Callable[..., None],
    upstream: FakeOpenAIServer,
) -> None:
    key = make_key()
    workspace_limits("acme", daily_token_limit=5)
    calls_before = len(upstream.requests)

    retrying = openai.OpenAI(
        api_key=key.secret, base_url=client_for(key).base_url, max_retries=3, timeout=30
    )
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as failed:  # the SDK's typed error
        retrying.chat.completions.create(model="fast", messages=ask())
    retrying.close()

    assert failed.value.status_code == 429
    assert failed.value.code == "insufficient_quota"
    assert failed.value.type == "insufficient_quota"
    assert "workspace_day_tokens" in str(failed.value)
    assert failed.value.response.headers["x-aisaas-quota-scope"] == "workspace_day_tokens"
    assert time.monotonic() - started < 2  # x-should-retry: false, so no backoff and retry
    assert len(upstream.requests) == calls_before  # no model call was made


@pytest.mark.usefixtures("same_minute")
def test_the_per_key_rate_limit_is_429_with_retry_after(
    make_key: MakeKey, client_for: Client
) -> None:
    key = make_key(rate_limit_per_minute=2)
    client = client_for(key)
    client.chat.completions.create(model="fast", messages=ask("one"))
    client.chat.completions.create(model="fast", messages=ask("two"))

    with pytest.raises(openai.RateLimitError) as failed:
        client.chat.completions.create(model="fast", messages=ask("three"))

    assert failed.value.code == "api_key_requests_per_minute_exceeded"
    assert 1 <= int(failed.value.response.headers["retry-after"]) <= 61
    # another key of the same workspace has its own window
    client_for(make_key()).chat.completions.create(model="fast", messages=ask("four"))


def test_an_upstream_that_keeps_failing_is_503(
    make_key: MakeKey, client_for: Client, upstream: FakeOpenAIServer
) -> None:
    upstream.fail_next(Fault.server_error(), times=2)  # the call and its one retry
    with pytest.raises(openai.InternalServerError) as failed:
        client_for(make_key()).chat.completions.create(model="fast", messages=ask())
    assert failed.value.status_code == 503
    assert failed.value.code == "provider_unavailable"
    assert "sk-" not in str(failed.value)


# --- tenant isolation ---------------------------------------------------------------------


def test_a_key_spends_only_its_own_workspaces_budget(
    make_key: MakeKey, client_for: Client, workspace_limits: Callable[..., None]
) -> None:
    acme, globex = make_key("acme"), make_key("globex")
    # globex has no budget left; acme's key is unaffected, and globex's key is refused
    workspace_limits("globex", daily_token_limit=5)

    reply = client_for(acme).chat.completions.with_raw_response.create(model="fast", messages=ask())
    with pytest.raises(openai.APIStatusError) as failed:
        client_for(globex).chat.completions.create(model="fast", messages=ask())

    assert reply.http_response.status_code == 200
    assert failed.value.status_code == 429
    assert failed.value.code == "insufficient_quota"
    [log] = call_logs(reply.headers["x-request-id"])
    assert log.workspace_id == acme.workspace.pk


def test_the_api_answers_only_on_the_public_host(make_key: MakeKey, api_server: AsgiServer) -> None:
    key = make_key("acme")
    response = httpx.post(
        f"http://127.0.0.1:{api_server.port}/v1/chat/completions",
        headers={"authorization": f"Bearer {key.secret}", "host": "globex.localhost"},
        json={"model": "fast", "messages": ask()},
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "wrong_host"
    assert f"http://localhost:{api_server.port}/v1" in error["message"]


# --- streams that end early ---------------------------------------------------------------


def test_a_client_that_disconnects_mid_stream_stops_the_upstream_and_pays_for_what_it_got(
    make_key: MakeKey, api_server: AsgiServer, upstream: FakeOpenAIServer
) -> None:
    key = make_key()
    upstream.token_delay = 0.05
    upstream.reply_next(Reply(text=LONG))  # 120 words, ~6 s at this pace
    received, request_id = 0, f"req-{unique()}"
    with httpx.stream(
        "POST",
        api_server.url("/v1/chat/completions"),
        headers={"authorization": f"Bearer {key.secret}", "x-request-id": request_id},
        json={"model": "fast", "messages": ask(), "stream": True},
        timeout=30,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line.removeprefix("data: "))["choices"][0]["delta"]
                received += bool(delta.get("content"))
            if received >= 5:
                break  # leaving the block closes the connection

    seen = upstream.last_request
    assert seen.wait_done(timeout=5)
    assert seen.client_disconnected
    assert 5 <= seen.tokens_sent < 60
    logs = []
    for _ in range(50):
        logs = call_logs(request_id)
        if logs:
            break
        time.sleep(0.1)
    [log] = logs
    assert log.status == "cancelled"
    assert 5 <= log.output_tokens <= seen.tokens_sent
    assert log.cost_micros > 0


def test_a_stream_cut_by_the_upstream_ends_with_an_error_not_done(
    make_key: MakeKey, client_for: Client, api_server: AsgiServer, upstream: FakeOpenAIServer
) -> None:
    key = make_key()
    upstream.reply_next(Reply(text=LONG))
    upstream.fail_next(Fault.drop_after(3))

    with httpx.stream(
        "POST",
        api_server.url("/v1/chat/completions"),
        headers={"authorization": f"Bearer {key.secret}"},
        json={"model": "fast", "messages": ask(), "stream": True},
        timeout=30,
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]

    assert response.status_code == 200
    assert lines[-1] != "data: [DONE]"
    error = json.loads(lines[-1].removeprefix("data: "))["error"]
    assert error["type"] == "api_error"
    assert "cut off" in error["message"]
    # the SDK turns that error chunk into an exception rather than a clean end
    upstream.reply_next(Reply(text=LONG))
    upstream.fail_next(Fault.drop_after(3))
    with pytest.raises(openai.APIError):
        list(client_for(key).chat.completions.create(model="fast", messages=ask(), stream=True))


def test_embedding_base64_is_little_endian_float32(make_key: MakeKey, http: httpx.Client) -> None:
    key = make_key()
    response = http.post(
        "/embeddings",
        headers={"authorization": f"Bearer {key.secret}"},
        json={"model": "embed", "input": "alpha", "encoding_format": "base64"},
    )
    raw = base64.b64decode(response.json()["data"][0]["embedding"])
    assert len(struct.unpack(f"<{len(raw) // 4}f", raw)) == 8
