"""Call records: queued in Redis by the gateway, stored by `call_records_flush` as llm_call_log
and llm_trace rows — masked, once per call, readable only through the workspace's selectors."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from apps.common.errors import NotFoundError
from apps.llm.core.types import ChatRequest, ChatResponse, Message
from apps.llm.services import llm_chat
from apps.traces.models import LlmCallLog, LlmTrace
from apps.traces.selectors import access_trace, call_log_list
from apps.traces.services import DEAD_LETTER_KEY, QUEUE_KEY, call_records_flush
from apps.traces.tasks import flush_call_records
from apps.workspaces.models import User, Workspace
from tests.gateway_support import ask, gateway_settings, redis_client, unique, user_actor

pytestmark = pytest.mark.django_db

EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 0123"
CARD = "4242 4242 4242 4242"  # Luhn-valid
API_KEY = "sk-live-AbCdEfGh12345678XyZ"


@pytest.fixture(autouse=True)
def _offline_glue() -> Iterator[None]:
    with gateway_settings():
        yield


def _call(workspace: Workspace, user: User, request: ChatRequest) -> ChatResponse:
    return llm_chat(workspace=workspace, actor=user_actor(user), feature="chat", request=request)


def _queued(trace_id: str) -> bytes:
    """The raw queued record of one call (not flushed yet)."""
    found = [
        item
        for item in redis_client().lrange(QUEUE_KEY, 0, -1)
        if json.loads(item)["trace_id"] == trace_id
    ]
    assert len(found) == 1
    assert isinstance(found[0], bytes)
    return found[0]


def test_a_trace_is_stored_with_pii_and_secrets_masked(acme: Workspace, owner: User) -> None:
    # given a prompt (and metadata) carrying an email, a phone, a card number and an API key;
    # the offline model quotes the prompt back, so the response carries them too
    prompt = unique(f"Email {EMAIL} or call {PHONE}; card {CARD}; key {API_KEY}. Next?")
    request = ChatRequest(
        alias="smart", messages=(Message("user", prompt),), metadata={"customer": EMAIL}
    )
    response = _call(acme, owner, request)
    assert EMAIL in response.text

    # when
    call_records_flush()

    # then nothing of them is stored, in any field of the trace or the call log
    trace = LlmTrace.objects.select_related("call").get(trace_id=response.trace_id)
    stored = json.dumps(
        [
            trace.messages,
            trace.response,
            trace.tool_calls,
            trace.thinking,
            trace.metadata,
            trace.call.error_message,
        ]
    )
    digits = "".join(ch for ch in stored if ch.isdigit())
    for secret in (EMAIL, PHONE, CARD, API_KEY, "AbCdEfGh12345678XyZ"):
        assert secret not in stored
    assert CARD.replace(" ", "") not in digits
    assert "4155550123" not in digits
    # and the placeholders say what was there
    content = trace.messages[0]["content"]
    for label in ("[EMAIL]", "[PHONE]", "[CARD]", "[API_KEY]"):
        assert label in content
    assert trace.metadata == {"customer": "[EMAIL]"}
    assert "[EMAIL]" in trace.response
    assert trace.masked is True


def test_the_same_records_flushed_twice_are_stored_once(acme: Workspace, owner: User) -> None:
    # given one call's record queued twice (a batch replayed after a crash)
    response = _call(acme, owner, ask(unique("hello")))
    record = _queued(response.trace_id)
    client = redis_client()
    client.rpush(QUEUE_KEY, record)

    # when the queue is flushed, then the record is pushed and flushed once more
    call_records_flush()
    client.rpush(QUEUE_KEY, record)
    stored_again = call_records_flush()

    # then one call log row and one trace row exist
    assert stored_again == 0
    assert LlmCallLog.objects.filter(trace_id=response.trace_id).count() == 1
    assert LlmTrace.objects.filter(trace_id=response.trace_id).count() == 1
    assert client.llen(QUEUE_KEY) == 0


def test_a_record_whose_workspace_is_gone_is_dropped_without_blocking_the_queue(
    acme: Workspace, owner: User
) -> None:
    # given a record of a deleted workspace queued before a good record
    good = _call(acme, owner, ask(unique("hello")))
    orphan = json.loads(_queued(good.trace_id))
    orphan.update(call_id="0" * 32, trace_id="1" * 32, workspace_id=2_000_000_000)
    client = redis_client()
    client.lpush(QUEUE_KEY, json.dumps(orphan))

    # when
    call_records_flush()

    # then the good one is stored, the orphan dropped, and nothing is left to retry
    assert LlmCallLog.objects.filter(trace_id=good.trace_id).exists()
    assert not LlmCallLog.objects.filter(trace_id=orphan["trace_id"]).exists()
    assert client.llen(QUEUE_KEY) == 0


def test_an_unreadable_record_goes_to_the_dead_letter_list(acme: Workspace, owner: User) -> None:
    # given a good record between two unreadable ones: not JSON, and a malformed call id
    good = _call(acme, owner, ask(unique("hello")))
    malformed = json.dumps({**json.loads(_queued(good.trace_id)), "call_id": "x"}).encode()
    client = redis_client()
    client.lpush(QUEUE_KEY, b"not json")
    client.rpush(QUEUE_KEY, malformed)

    try:
        # when
        call_records_flush()

        # then the good record is stored and the queue is empty: the bad ones wait for a person
        assert LlmCallLog.objects.filter(trace_id=good.trace_id).exists()
        assert client.llen(QUEUE_KEY) == 0
        assert client.lrange(DEAD_LETTER_KEY, -2, -1) == [b"not json", malformed]
    finally:
        client.ltrim(DEAD_LETTER_KEY, 0, -3)


def test_acmes_calls_are_invisible_to_globex(
    acme: Workspace, globex: Workspace, owner: User, outsider: User
) -> None:
    # given one call in each workspace
    ours = _call(acme, owner, ask(unique("acme's question")))
    theirs = _call(globex, outsider, ask(unique("globex's question")))
    call_records_flush()

    # when globex lists its calls and asks for acme's trace
    listed = {str(c.trace_id.hex) for c in call_log_list(workspace=globex)}

    # then it sees its own call only, and acme's trace does not exist for it
    assert theirs.trace_id in listed
    assert ours.trace_id not in listed
    with pytest.raises(NotFoundError):
        access_trace(workspace=globex, trace_id=ours.trace_id)
    with pytest.raises(NotFoundError):
        access_trace(workspace=globex, trace_id="not-a-uuid")
    assert access_trace(workspace=acme, trace_id=ours.trace_id).call.workspace_id == acme.pk
    assert [c.feature for c in call_log_list(workspace=acme, feature="nothing-like-this")] == []


def test_the_beat_task_stores_queued_records(acme: Workspace, owner: User) -> None:
    # given a queued record
    response = _call(acme, owner, ask(unique("hello")))

    # when beat's task runs (called directly: the worker would do the same)
    stored = flush_call_records()

    # then
    assert stored >= 1
    assert LlmCallLog.objects.filter(trace_id=response.trace_id).exists()


def test_nul_characters_in_a_prompt_are_stored_as_replacement_characters(
    acme: Workspace, owner: User
) -> None:
    # PostgreSQL text and jsonb cannot hold NUL; the fuzzer sent one and blocked the queue
    reply = _call(acme, owner, ask(unique("before\x00after")))

    assert call_records_flush() >= 1

    trace = LlmTrace.objects.get(trace_id=reply.trace_id)
    assert "before\ufffdafter" in json.dumps(trace.messages, ensure_ascii=False)
    assert redis_client().llen(QUEUE_KEY) == 0


def test_a_record_the_database_refuses_is_dead_lettered_and_the_rest_stored(
    acme: Workspace, owner: User
) -> None:
    # given a good record queued behind one whose field overflows its column
    good = _call(acme, owner, ask(unique("fine")))
    record = json.loads(_queued(good.trace_id))
    fresh = {"call_id": uuid.uuid4().hex, "trace_id": uuid.uuid4().hex, "alias": "x" * 500}
    refused = json.dumps({**record, **fresh}).encode()
    client = redis_client()
    client.lpush(QUEUE_KEY, refused)

    try:
        call_records_flush()

        assert LlmCallLog.objects.filter(trace_id=good.trace_id).exists()
        assert client.llen(QUEUE_KEY) == 0
        assert client.lrange(DEAD_LETTER_KEY, -1, -1) == [refused]
    finally:
        client.ltrim(DEAD_LETTER_KEY, 0, -2)
