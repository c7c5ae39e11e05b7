"""A stalled Redis (a loopback listener that accepts and never answers) no longer hangs a model
call: the gateway's client times out, the call is refused with a 503 naming Redis before any
provider is called, and its record is kept in the fallback outbox instead of being lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from django.conf import settings

from apps.llm.core.budget import BudgetStore
from apps.llm.core.cache import ExactCache
from apps.llm.core.context import CallRecord
from apps.llm.core.errors import ServiceUnavailableError
from apps.llm.core.gateway import Gateway
from apps.llm.core.gateway.durable import RECORD, KeptWrite
from apps.llm.core.redis_batching import BatchingRedis
from apps.llm.core.types import StreamEvent
from tests.fakes.redis_proxy import StalledRedis

from .conftest import MakeScope, ask

TIMEOUT = 0.5


class RedisListSink:
    """A call sink that pushes to Redis, as the production one does."""

    def __init__(self, client: BatchingRedis) -> None:
        self.client = client

    async def record(self, record: CallRecord) -> None:
        await self.client.rpush("test:records", record.call_id)


class ListOutbox:
    def __init__(self) -> None:
        self.kept: list[KeptWrite] = []

    async def keep(self, write: KeptWrite) -> None:
        self.kept.append(write)


@pytest_asyncio.fixture
async def stalled_client() -> AsyncIterator[BatchingRedis]:
    with StalledRedis(settings.REDIS_URL) as server:
        client = BatchingRedis.from_url(
            server.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        try:
            yield client
        finally:
            await client.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
async def test_a_stalled_redis_is_a_503_naming_it_in_bounded_time(
    stalled_client: BatchingRedis, make_scope: MakeScope, local, streamed: bool
) -> None:
    outbox = ListOutbox()
    gateway = Gateway(
        budget=BudgetStore(stalled_client),
        cache=ExactCache(stalled_client),
        sink=RedisListSink(stalled_client),
        outbox=outbox,
    )
    scope = make_scope({"local": local})

    async def call() -> None:
        if streamed:
            events: list[StreamEvent] = [e async for e in gateway.stream(scope, ask("hi"))]
            raise AssertionError(f"the stream went through a stalled Redis: {events}")
        await gateway.chat(scope, ask("hi"))

    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as refused:
        await asyncio.wait_for(call(), 10)  # a hang fails here instead of hanging the run
    elapsed = time.monotonic() - started

    assert elapsed < 4 * TIMEOUT + 1
    assert refused.value.status == 503
    assert "Redis" in refused.value.message
    # The refused call still leaves its one record: Redis refused it too, so the outbox has it.
    assert [(w.stage, w.record.status, w.record.error_code) for w in outbox.kept] == [
        (RECORD, "error", "service_unavailable")
    ]
