"""The workspace socket through the whole ASGI stack: origin check, host → workspace, session
login, membership.

The consumer queries from asgiref's database thread, on a connection of its own, so it sees
committed rows only. These tests therefore read nothing the test transaction wrote: the session
workspaces and actors are committed, and each login is committed from a thread of its own (and
deleted afterwards). No `transaction=True`: its flush after each test would empty the public
schema, session workspaces included, for every test that runs later.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connections

from aisaas.asgi import application
from apps.workspaces.consumers import workspace_group
from apps.workspaces.models import User
from tests.asgi_server import run_committed
from tests.conftest import host_client

pytestmark = pytest.mark.django_db

T = TypeVar("T")
PATH = "/ws/workspace/"
SAME_ORIGIN = "same"


def _session_cookie(user: User, host: str) -> Iterator[str]:
    client = run_committed(lambda: host_client(host, user))
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    yield f"{settings.SESSION_COOKIE_NAME}={session_key}"
    run_committed(lambda: Session.objects.filter(session_key=session_key).delete())


@pytest_asyncio.fixture(autouse=True)
async def _close_consumer_connections() -> AsyncIterator[None]:
    """channels.testing turns `close_old_connections` off while the communicator runs, so the
    consumer's database thread keeps its connection; close it, or the test database cannot be
    dropped at the end of the session."""
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def member_cookie(member: User) -> Iterator[str]:
    yield from _session_cookie(member, "acme.localhost")


@pytest.fixture
def outsider_cookie(outsider: User) -> Iterator[str]:
    yield from _session_cookie(outsider, "globex.localhost")


def _socket(
    host: str, *, cookie: str | None = None, origin: str | None = SAME_ORIGIN
) -> WebsocketCommunicator:
    """A browser's socket to `host` from a page on `origin` (None: no Origin header at all)."""
    headers = [(b"host", host.encode())]
    if origin == SAME_ORIGIN:
        origin = f"http://{host}"
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, PATH, headers=headers)


@asynccontextmanager
async def _greeted(
    communicator: WebsocketCommunicator,
) -> AsyncIterator[tuple[WebsocketCommunicator, dict[str, Any]]]:
    """Connect and read the hello message; hang up on exit."""
    try:
        connected, code = await communicator.connect()
        assert connected, f"refused with close code {code}"
        yield communicator, await communicator.receive_json_from()
    finally:
        await communicator.disconnect()


async def _connect_and_hang_up(communicator: WebsocketCommunicator) -> tuple[bool, Any]:
    """(accepted, close code) of one connection attempt."""
    try:
        return await communicator.connect()
    finally:
        await communicator.disconnect()


@pytest.mark.asyncio
async def test_a_member_is_greeted_with_workspace_and_role(member_cookie):
    async with _greeted(_socket("acme.localhost", cookie=member_cookie)) as (_, hello):
        assert hello == {"type": "hello", "workspace": "acme", "role": "member"}


@pytest.mark.asyncio
async def test_a_ping_gets_a_pong(member_cookie):
    async with _greeted(_socket("acme.localhost", cookie=member_cookie)) as (socket, _):
        await socket.send_json_to({"type": "ping"})

        assert await socket.receive_json_from() == {"type": "pong"}


@pytest.mark.asyncio
async def test_text_that_is_not_json_gets_an_error_and_the_socket_stays_open(member_cookie):
    async with _greeted(_socket("acme.localhost", cookie=member_cookie)) as (socket, _):
        await socket.send_to(text_data="ping, please")
        error = await socket.receive_json_from()
        await socket.send_json_to({"type": "ping"})

        assert error == {"type": "error", "message": "Messages must be JSON text."}
        assert await socket.receive_json_from() == {"type": "pong"}


@pytest.mark.asyncio
async def test_a_workspace_event_reaches_its_members(acme, member_cookie):
    async with _greeted(_socket("acme.localhost", cookie=member_cookie)) as (socket, _):
        await get_channel_layer().group_send(
            workspace_group(acme),
            {"type": "workspace.event", "payload": {"type": "approval.pending", "id": 7}},
        )

        assert await socket.receive_json_from() == {"type": "approval.pending", "id": 7}


@pytest.mark.asyncio
async def test_a_member_of_another_workspace_is_refused_as_not_found(outsider_cookie):
    outcome = await _connect_and_hang_up(_socket("acme.localhost", cookie=outsider_cookie))

    assert outcome == (False, 4404)


@pytest.mark.asyncio
async def test_an_anonymous_visitor_is_refused():
    outcome = await _connect_and_hang_up(_socket("acme.localhost"))

    assert outcome == (False, 4401)


@pytest.mark.asyncio
async def test_the_public_host_has_no_workspace_socket(member_cookie):
    outcome = await _connect_and_hang_up(_socket("localhost", cookie=member_cookie))

    assert outcome == (False, 4401)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example.com",
        "http://globex.localhost",
        "http://acme.localhost.evil.example",
        "https://acme.localhost",
        "ws://acme.localhost",
        "null",
        None,
    ],
    ids=[
        "third-party",
        "other-workspace",
        "lookalike",
        "other-scheme",
        "ws-scheme",
        "null",
        "missing",
    ],
)
async def test_a_socket_opened_from_another_origin_is_refused(member_cookie, origin):
    socket = _socket("acme.localhost", cookie=member_cookie, origin=origin)

    assert await _connect_and_hang_up(socket) == (False, 4403)


@pytest.mark.asyncio
async def test_an_unknown_workspace_host_is_refused(member_cookie):
    outcome = await _connect_and_hang_up(_socket("nope.localhost", cookie=member_cookie))

    assert outcome == (False, 4403)


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/ws/workspace/", "/ws/chat/"])
async def test_a_frame_nested_100000_deep_gets_an_error_event_and_the_socket_stays_open(
    member_cookie, path
):
    headers = [
        (b"host", b"acme.localhost"),
        (b"origin", b"http://acme.localhost"),
        (b"cookie", member_cookie.encode()),
    ]
    socket = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await socket.connect()
    assert connected, code
    try:
        if path == PATH:
            await socket.receive_json_from()  # hello
        await socket.send_to(
            text_data='{"type": "ping", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
        )

        error = await socket.receive_json_from()
        assert error["type"] == "error"
        assert "levels deep" in error["message"]
        # Still open: the next frame is answered.
        await socket.send_to(text_data="not json")
        assert (await socket.receive_json_from())["type"] == "error"
    finally:
        await socket.disconnect()
