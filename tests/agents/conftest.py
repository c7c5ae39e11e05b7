"""Fixtures of the chat socket tests: a member's session cookie, a committed conversation, and
the consumer's own database connections closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.db import connections
from django_tenants.utils import schema_context

from apps.agents.chat.services import conversation_create
from apps.agents.models import Conversation
from apps.approvals.models import FLAGS, AutonomyRule, Level
from apps.workspaces.models import User, Workspace
from tests.asgi_server import run_committed
from tests.workspaces.test_consumers import _session_cookie


@pytest_asyncio.fixture(autouse=True)
async def _close_consumer_connections() -> AsyncIterator[None]:
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def member_cookie(member: User) -> Iterator[str]:
    yield from _session_cookie(member, "acme.localhost")


@pytest.fixture
def outsider_cookie(outsider: User) -> Iterator[str]:
    yield from _session_cookie(outsider, "globex.localhost")


@pytest.fixture
def conversation(acme: Workspace, member: User) -> Iterator[Conversation]:
    def create() -> Conversation:
        with schema_context(acme.schema_name):
            return conversation_create(user=member)

    found = run_committed(create)
    yield found

    def remove() -> None:
        with schema_context(acme.schema_name):
            Conversation.objects.filter(pk=found.pk).delete()

    run_committed(remove)


@pytest.fixture
def autonomous(acme: Workspace) -> None:
    """Acme's tools of every flag run at L5 (autonomous), as before approvals: for tests of
    what a tool does rather than of who approves it (tests/approvals)."""
    with schema_context(acme.schema_name):
        for flag in FLAGS:
            AutonomyRule.objects.create(agent_id=None, target=flag, level=Level.AUTONOMOUS)
