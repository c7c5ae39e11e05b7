"""`python manage.py llm`: chat through an alias (offline, or against the fake vendors through
the official SDKs) and today's budgets, as support and newcomers use it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from apps.traces.models import LlmCallLog
from apps.workspaces.models import Workspace
from tests.fakes import FakeAnthropicServer, FakeOpenAIServer
from tests.gateway_support import gateway_settings, unique

pytestmark = pytest.mark.django_db

PLATFORM_KEY = "sk-platform-0123456789abcdef"
JSON_FIELDS = {
    "text",
    "alias",
    "provider",
    "model",
    "usage",
    "cost_micros",
    "cached",
    "fallback_used",
    "trace_id",
    "request_id",
}


@pytest.fixture(autouse=True)
def _offline_glue() -> Iterator[None]:
    with gateway_settings():
        yield


def llm(*args: str) -> tuple[str, str]:
    """Run the command; return (stdout, stderr)."""
    out, err = StringIO(), StringIO()
    call_command("llm", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def chat_json(text: str, *options: str, alias: str = "smart") -> dict[str, Any]:
    out, _ = llm("chat", "--workspace", "acme", "--alias", alias, "--json", *options, text)
    answer: dict[str, Any] = json.loads(out)
    return answer


def test_chat_json_describes_the_answer(acme: Workspace) -> None:
    # given no provider keys: the offline model answers

    # when
    answer = chat_json(unique("What can you do?"))

    # then the JSON carries every documented field
    assert set(answer) >= JSON_FIELDS
    assert (answer["alias"], answer["provider"], answer["model"]) == (
        "smart",
        "local",
        "local-smart",
    )
    assert answer["offline"] is True
    assert answer["text"]
    assert set(answer["usage"]) == {"input_tokens", "output_tokens", "cached_tokens"}
    assert answer["usage"]["input_tokens"] > 0
    assert answer["usage"]["output_tokens"] > 0
    assert answer["cost_micros"] > 0
    assert (answer["cached"], answer["fallback_used"]) == (False, False)
    # and the call log row exists when the command returns
    call = LlmCallLog.objects.get(trace_id=answer["trace_id"])
    assert (call.workspace_id, call.request_id, call.feature) == (
        acme.pk,
        answer["request_id"],
        "cli.chat",
    )
    assert (call.actor_type, call.actor_id) == ("system", "cli")


def test_the_same_question_again_is_answered_from_the_cache() -> None:
    # given a question asked once
    question = unique("Name three colours")
    first = chat_json(question)

    # when it is asked again
    again = chat_json(question)

    # then the cache answers, for free
    assert (again["cached"], again["cost_micros"], again["text"]) == (True, 0, first["text"])
    assert chat_json(question, "--no-cache")["cached"] is False


def test_chat_prints_the_answer_and_labels_the_offline_model() -> None:
    # when
    out, err = llm("chat", "--workspace", "acme", unique("Say hello"))

    # then the answer is on stdout and how it was made on stderr
    assert out.strip()
    assert "smart → local/local-smart (offline local model)" in err
    assert "tokens" in err


def test_chat_streams_the_answer_token_by_token() -> None:
    # given the same question, streamed and not
    question = unique("Tell me about streaming")

    # when
    streamed, _ = llm("chat", "--workspace", "acme", "--stream", "--no-cache", question)
    answer = chat_json(question, "--stream", "--no-cache")

    # then the streamed text is the answer, and --json reports the streamed call
    assert streamed.strip() == answer["text"].strip()
    assert answer["provider"] == "local"
    assert answer["usage"]["output_tokens"] > 0
    assert LlmCallLog.objects.filter(trace_id=answer["trace_id"], status="ok").exists()


def test_budget_json_lists_each_scope_for_today() -> None:
    # given one call today (acme's counter is shared with other tests, and with calls a killed
    # test run left reserved: compare with the counter before the call)
    before, _ = llm("budget", "--workspace", "acme", "--json")
    chat_json(unique("hello"))

    # when
    out, _ = llm("budget", "--workspace", "acme", "--json")

    # then the workspace's token scope shows used / reserved / limit
    scopes = {row["scope"]: row for row in json.loads(out)}
    tokens = scopes["workspace_day_tokens"]
    earlier = {row["scope"]: row for row in json.loads(before)}["workspace_day_tokens"]
    assert tokens["used"] > earlier["used"]
    assert tokens["reserved"] == earlier["reserved"]  # the call left nothing reserved
    assert tokens["limit"] == 50_000
    assert (tokens["unit"], tokens["kind"]) == ("tokens", "budget")
    assert tokens["resets_at"]


def test_budget_prints_a_line_per_scope() -> None:
    out, _ = llm("budget", "--workspace", "acme")

    assert out.startswith("workspace_day_tokens")
    assert "limit" in out
    assert "50,000 tokens" in out


def test_an_unknown_workspace_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="No workspace “nope”"):
        llm("chat", "--workspace", "nope", "hi")
    with pytest.raises(CommandError, match="No workspace “public”"):
        llm("budget", "--workspace", "public")


def test_an_unknown_alias_is_a_clear_error() -> None:
    with pytest.raises(CommandError) as failed:
        llm("chat", "--workspace", "acme", "--alias", "genius", "hi")

    assert str(failed.value).startswith("unknown_alias: Unknown model alias “genius”; use one of:")
    assert "smart" in str(failed.value)


def test_smart_answers_through_anthropic_with_a_fake_server_base_url() -> None:
    # given the platform's Anthropic key and base URL (the fake vendor)
    with (
        FakeAnthropicServer() as server,
        gateway_settings(ANTHROPIC_API_KEY=PLATFORM_KEY, ANTHROPIC_BASE_URL=server.base_url),
    ):
        # when
        question = unique("hello anthropic")
        answer = chat_json(question)
        streamed = chat_json(unique("stream it"), "--stream")

    # then the official SDK called the fake with our key
    assert (answer["provider"], answer["model"], answer["offline"]) == (
        "anthropic",
        "claude-sonnet-4-6",
        False,
    )
    assert answer["text"] == f"Echo: {question}"
    assert answer["cost_micros"] > 0
    assert [r.path for r in server.requests] == ["/v1/messages", "/v1/messages"]
    headers = server.requests[0].headers
    # The SDK sends the key as x-api-key or (recent versions) as a bearer token.
    assert PLATFORM_KEY in {headers.get("x-api-key"), headers.get("authorization", "")[7:]}
    assert server.requests[1].stream
    assert streamed["provider"] == "anthropic"


@pytest.mark.parametrize(
    ("alias", "model"), [("fast", "gpt-4.1-mini"), ("extract", "gpt-4.1-mini")]
)
def test_fast_and_extract_answer_through_openai_with_a_fake_server_base_url(
    alias: str, model: str
) -> None:
    # given only the platform's OpenAI key and base URL (the fake vendor)
    with (
        FakeOpenAIServer() as server,
        gateway_settings(OPENAI_API_KEY=PLATFORM_KEY, OPENAI_BASE_URL=server.base_url),
    ):
        # when
        question = unique(f"hello {alias}")
        answer = chat_json(question, alias=alias)

    # then
    assert (answer["provider"], answer["model"], answer["alias"]) == ("openai", model, alias)
    assert answer["text"] == f"Echo: {question}"
    assert [r.path for r in server.requests] == ["/v1/chat/completions"]
    assert server.last_request.headers["authorization"] == f"Bearer {PLATFORM_KEY}"
