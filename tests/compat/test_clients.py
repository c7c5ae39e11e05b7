"""The client libraries people already use, against the running ASGI server with a fake
upstream (issue 21): the openai SDK (Responses API, its stream helper, legacy completions), the
OpenAI Agents SDK on its default Responses model with a function tool, LangChain's ChatOpenAI
(tools, streaming, the Responses API) and OpenAIEmbeddings with its defaults, and LiteLLM's
completion / responses / text_completion; and one exhausted quota through each of them, which
every one must surface as its typed rate-limit error without retrying. Each scenario runs in
.venv-compat (`make compat`); see tests/compat/clients/run.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.api.conftest import MakeKey
from tests.fakes import FakeOpenAIServer, Reply, ToolCallScript

from .conftest import Run

pytestmark = pytest.mark.django_db


def _weather(city: str, call_id: str) -> Reply:
    call = ToolCallScript(name="get_weather", arguments={"city": city}, id=call_id)
    return Reply(text="", tool_calls=(call,), finish="tool_calls")


def test_the_openai_sdk_responses_stream_and_completions(
    run_clients: Run, make_key: MakeKey, upstream: FakeOpenAIServer
) -> None:
    upstream.reply_next(_weather("Oslo", "call_1"))
    upstream.reply_next(Reply(text="Sunny in Oslo."))
    upstream.reply_next(Reply(text="streamed words here"))
    upstream.reply_next(Reply(text="completed."))

    out = run_clients("openai_sdk", make_key())

    assert out["call"] == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert out["second"] == "Sunny in Oslo."
    assert out["stream_kinds"][0] == "response.created"
    assert out["stream_kinds"][-1] == "response.completed"
    assert "response.output_text.delta" in out["stream_kinds"]
    assert out["stream_text"] == "streamed words here"
    assert out["completion"] == "completed."
    assert out["model"] == "fast"
    tool_turn = upstream.requests[-3].body["messages"]
    assert tool_turn[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"}


def test_the_agents_sdk_runs_a_function_tool_over_the_responses_api(
    run_clients: Run, make_key: MakeKey, upstream: FakeOpenAIServer
) -> None:
    upstream.reply_next(_weather("Oslo", "call_a"))
    upstream.reply_next(Reply(text="It is sunny in Oslo."))
    upstream.reply_next(_weather("Bergen", "call_b"))
    upstream.reply_next(Reply(text="It is sunny in Bergen."))
    before = len(upstream.requests)

    out = run_clients("agents_sdk", make_key())

    assert out["final_output"] == "It is sunny in Oslo."
    assert out["model_class"] == "OpenAIResponsesModel"
    assert out["tool_calls"] == ["Oslo", "Bergen"]  # the SDK ran our function tool, twice
    assert out["streamed_output"] == "It is sunny in Bergen."
    assert "raw_response_event" in out["stream_event_kinds"]
    sent = upstream.requests[before:]
    assert len(sent) == 4
    assert sent[0].body["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert sent[0].body["tools"][0]["function"]["name"] == "get_weather"
    assert sent[1].body["messages"][-1]["role"] == "tool"
    assert sent[1].body["messages"][-1]["content"] == "Sunny in Oslo"


def test_langchain_chat_tools_stream_responses_and_default_embeddings(
    run_clients: Run, make_key: MakeKey, upstream: FakeOpenAIServer
) -> None:
    upstream.reply_next(Reply(text="Hello!"))
    upstream.reply_next(_weather("Oslo", "call_l"))
    upstream.reply_next(Reply(text="one two three"))
    upstream.reply_next(Reply(text="via responses"))
    before = len(upstream.requests)

    out = run_clients("langchain", make_key())

    assert out["answer"] == "Hello!"
    assert out["tool_calls"] == [{"name": "get_weather", "args": {"city": "Oslo"}}]
    assert "".join(out["stream"]) == "one two three"
    assert len([p for p in out["stream"] if p]) > 1
    assert out["responses_text"] == "via responses"
    # OpenAIEmbeddings sent cl100k_base token arrays by default; the upstream got the texts
    embedded = [
        r.body["input"] for r in upstream.requests[before:] if r.path.endswith("/embeddings")
    ]
    assert ["tenant schemas", "isolate data"] in embedded
    assert ["where is my data"] in embedded
    assert len(set(out["embedding_sizes"])) == 1


def test_litellm_completion_responses_and_text_completion(
    run_clients: Run, make_key: MakeKey, upstream: FakeOpenAIServer
) -> None:
    upstream.reply_next(Reply(text="Hi from chat."))
    upstream.reply_next(Reply(text="streamed by litellm"))
    upstream.reply_next(Reply(text="Hi from responses."))
    upstream.reply_next(Reply(text="Hi from completions."))

    out = run_clients("litellm_sdk", make_key())

    assert out == {
        "chat": "Hi from chat.",
        "stream": "streamed by litellm",
        "responses": "Hi from responses.",
        "text_completion": "Hi from completions.",
    }


def test_an_exhausted_quota_is_every_sdks_typed_rate_limit_error_and_not_retried(
    run_clients: Run,
    make_key: MakeKey,
    upstream: FakeOpenAIServer,
    workspace_limits: Callable[..., None],
) -> None:
    workspace_limits("globex", daily_token_limit=5)
    before = len(upstream.requests)

    out = run_clients("quota_errors", make_key("globex"))

    assert out["openai"]["type"] == "openai.RateLimitError"
    assert out["openai_responses"]["type"] == "openai.RateLimitError"
    assert out["agents"]["type"] == "openai.RateLimitError"
    # LangChain re-raises it as its own subclass of openai.RateLimitError
    assert "openai.RateLimitError" in out["langchain"]["bases"]
    assert "litellm.exceptions.RateLimitError" in out["litellm"]["bases"]
    assert {failure["status"] for failure in out.values()} == {429}
    for library, failure in out.items():
        assert failure["seconds"] < 3, (library, failure)  # x-should-retry: false: no backoff
    assert len(upstream.requests) == before  # no model call was made
