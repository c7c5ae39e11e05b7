"""The chat socket through the whole ASGI stack, with the offline local model answering: a sent
message streams back token by token and is stored; stop keeps the partial answer as stopped and
settles what was produced; regenerate keeps the old answer; bad frames get error events; an
outsider's socket is closed; another workspace's conversation is not found.

The consumer works on its own database connection, so conversations are committed (and removed
afterwards) — see tests/workspaces/test_consumers.py for why no `transaction=True`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django_tenants.utils import schema_context

from aisaas.asgi import application
from apps.agents.models import Conversation, Message
from apps.traces.models import LlmCallLog
from apps.traces.services import call_records_flush
from apps.workspaces.models import User, Workspace
from tests.asgi_server import run_committed
from tests.gateway_support import gateway_settings, unique
from tests.workspaces.test_consumers import _session_cookie

pytestmark = pytest.mark.django_db

PATH = "/ws/chat/"


def socket(host: str, cookie: str, origin: str | None = None) -> WebsocketCommunicator:
    headers = [
        (b"host", host.encode()),
        (b"origin", (origin or f"http://{host}").encode()),
        (b"cookie", cookie.encode()),
    ]
    return WebsocketCommunicator(application, PATH, headers=headers)


async def until(ws: WebsocketCommunicator, kind: str, timeout: float = 10) -> list[dict[str, Any]]:
    """Events up to and including the first of `kind`."""
    seen = []
    while True:
        event = await ws.receive_json_from(timeout=timeout)
        seen.append(event)
        if event["type"] == kind:
            return seen


def stored(workspace: Workspace, conversation: Conversation) -> list[Message]:
    def load() -> list[Message]:
        with schema_context(workspace.schema_name):
            return list(Message.objects.filter(conversation_id=conversation.pk).order_by("pk"))

    return run_committed(load)


@pytest.mark.asyncio
async def test_a_message_streams_back_token_by_token_and_is_stored(
    acme: Workspace, member_cookie: str, conversation: Conversation
) -> None:
    with gateway_settings():
        ws = socket("acme.localhost", member_cookie)
        connected, _ = await ws.connect()
        assert connected
        await ws.send_json_to(
            {"type": "send", "conversation": conversation.pk, "text": unique("Explain tenants")}
        )
        events = await until(ws, "done")
        await ws.disconnect()

    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["message", "answer", "status"]
    tokens = [e["text"] for e in events if e["type"] == "token"]
    assert len(tokens) > 3  # progressive, not one blob
    done = events[-1]
    assert done["status"] == "complete"
    assert done["offline"] is True
    question, answer = await database_sync_to_async(stored)(acme, conversation)
    assert question.content.startswith("Explain tenants")
    assert (answer.status, answer.content) == ("complete", "".join(tokens))
    assert answer.trace_id is not None
    assert answer.output_tokens > 0


@pytest.mark.asyncio
async def test_stop_keeps_the_partial_answer_and_bills_only_what_was_produced(
    acme: Workspace, member_cookie: str, conversation: Conversation
) -> None:
    with gateway_settings(LLM_LOCAL_TOKENS_PER_SECOND=40):  # ~25 ms a token: time to stop
        ws = socket("acme.localhost", member_cookie)
        await ws.connect()
        await ws.send_json_to(
            {
                "type": "send",
                "conversation": conversation.pk,
                "text": unique("Write a long essay " * 20),
            }
        )
        seen = await until(ws, "token")
        for _ in range(4):
            seen += await until(ws, "token")
        await ws.send_json_to({"type": "stop"})
        seen += await until(ws, "done")
        await ws.disconnect()

    done = seen[-1]
    assert done["status"] == "stopped"
    streamed = "".join(e["text"] for e in seen if e["type"] == "token")
    _, answer = await database_sync_to_async(stored)(acme, conversation)
    assert answer.status == "stopped"
    assert answer.content == streamed
    # the gateway settled the cancelled call: its log row holds the partial usage
    log = await database_sync_to_async(_call_log)(answer.request_id)
    assert log.status == "cancelled"
    assert 5 <= log.output_tokens < 200


def _call_log(request_id: str) -> LlmCallLog:
    def load() -> LlmCallLog:
        call_records_flush()
        return LlmCallLog.objects.get(request_id=request_id)

    return run_committed(load)


@pytest.mark.asyncio
async def test_regenerate_keeps_the_old_answer_in_history(
    acme: Workspace, member_cookie: str, conversation: Conversation
) -> None:
    with gateway_settings():
        ws = socket("acme.localhost", member_cookie)
        await ws.connect()
        await ws.send_json_to(
            {"type": "send", "conversation": conversation.pk, "text": unique("Hi")}
        )
        await until(ws, "done")
        await ws.send_json_to({"type": "regenerate", "conversation": conversation.pk})
        events = await until(ws, "done")
        await ws.disconnect()

    [started] = [e for e in events if e["type"] == "answer"]  # a title event may come first
    assert (started["alias"], started["regenerate"]) == ("smart", True)
    _question, first, second = await database_sync_to_async(stored)(acme, conversation)
    assert (first.superseded, second.superseded) == (True, False)
    assert second.status == "complete"
    assert first.trace_id != second.trace_id


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("frame", "says"),
    [
        ("not json", "Send JSON"),
        ({"type": "dance"}, "Unknown message type"),
        ({"type": "send", "conversation": "nope", "text": "hi"}, "No such conversation"),
        ({"type": "send", "conversation": 999999, "text": "hi"}, "No such conversation"),
        ({"type": "send", "conversation": "CONV", "text": "   "}, "Type a message"),
        ({"type": "send", "conversation": "CONV", "text": 42}, "Type a message"),
        ({"type": "send", "conversation": "CONV", "text": "x" * 20_001}, "the limit is 20,000"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_usable(
    member_cookie: str, conversation: Conversation, frame: Any, says: str
) -> None:
    if isinstance(frame, dict) and frame.get("conversation") == "CONV":
        frame = {**frame, "conversation": conversation.pk}
    ws = socket("acme.localhost", member_cookie)
    await ws.connect()
    if isinstance(frame, str):
        await ws.send_to(text_data=frame)
    else:
        await ws.send_json_to(frame)
    error = await ws.receive_json_from(timeout=5)
    await ws.send_json_to({"type": "stop"})  # still open: a harmless frame is accepted
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()

    assert error["type"] == "error"
    assert says in error["message"]


@pytest.mark.asyncio
async def test_sending_while_an_answer_streams_is_refused_clearly(
    member_cookie: str, conversation: Conversation
) -> None:
    with gateway_settings(LLM_LOCAL_TOKENS_PER_SECOND=40):
        ws = socket("acme.localhost", member_cookie)
        await ws.connect()
        await ws.send_json_to(
            {"type": "send", "conversation": conversation.pk, "text": unique("long " * 30)}
        )
        await until(ws, "token")
        await ws.send_json_to({"type": "send", "conversation": conversation.pk, "text": "another"})
        refusal = await until(ws, "error")
        await ws.send_json_to({"type": "stop"})
        await until(ws, "done")
        await ws.disconnect()

    assert "still being written" in refusal[-1]["message"]


@pytest.mark.asyncio
async def test_an_outsiders_socket_is_closed(outsider_cookie: str) -> None:
    ws = socket("acme.localhost", outsider_cookie)
    connected, code = await ws.connect()
    await ws.disconnect()
    assert (connected, code) == (False, 4404)


@pytest.mark.asyncio
async def test_another_origin_cannot_open_the_socket(member_cookie: str) -> None:
    ws = socket("acme.localhost", member_cookie, origin="http://evil.example")
    connected, code = await ws.connect()
    await ws.disconnect()
    assert (connected, code) == (False, 4403)


@pytest.mark.asyncio
async def test_another_users_conversation_is_not_found(
    owner: User, conversation: Conversation
) -> None:
    # the member's conversation, asked for by the owner of the same workspace
    cookies = _session_cookie(owner, "acme.localhost")
    cookie = next(cookies)
    ws = socket("acme.localhost", cookie)
    await ws.connect()
    await ws.send_json_to({"type": "send", "conversation": conversation.pk, "text": "hi"})
    error = await ws.receive_json_from(timeout=5)
    await ws.disconnect()
    next(cookies, None)
    assert "No such conversation" in error["message"]


@pytest.mark.asyncio
async def test_closing_the_socket_mid_answer_stops_it(
    acme: Workspace, member_cookie: str, conversation: Conversation
) -> None:
    with gateway_settings(LLM_LOCAL_TOKENS_PER_SECOND=40):
        ws = socket("acme.localhost", member_cookie)
        await ws.connect()
        await ws.send_json_to(
            {"type": "send", "conversation": conversation.pk, "text": unique("long " * 30)}
        )
        await until(ws, "token")
        await ws.disconnect()
        # then the consumer marks the answer stopped (polled, instead of sleeping 0.3 s)
        deadline = time.monotonic() + 5
        while (await database_sync_to_async(stored)(acme, conversation))[-1].status != "stopped":
            assert time.monotonic() < deadline, "the answer was never marked stopped"
            await asyncio.sleep(0.02)

    _, answer = await database_sync_to_async(stored)(acme, conversation)
    assert answer.status == "stopped"


@pytest.mark.asyncio
async def test_an_idle_socket_outlives_the_channel_layers_blocking_read(
    member_cookie: str,
) -> None:
    # channels_redis waits on Redis with 5 s blocking reads; a client read timeout of 5 s used
    # to kill every socket (close 1011) after a few idle seconds
    ws = socket("acme.localhost", member_cookie)
    await ws.connect()
    assert await ws.receive_nothing(timeout=7)
    await ws.send_json_to({"type": "dance"})
    reply = await ws.receive_json_from(timeout=5)
    await ws.disconnect()
    assert reply["type"] == "error"
