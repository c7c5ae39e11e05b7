"""The gateway's Redis client on a real redis-server: commands issued in one loop turn share one
write, each command keeps its own reply or error, and a lost connection or a cancelled caller
never leaves replies matched to the wrong command."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aisaas.devstack import EmbeddedRedis
from apps.llm.core.context import Limits
from apps.llm.core.errors import BudgetExceededError
from apps.llm.core.redis_batching import BatchingRedis
from benchmarks.common import free_port

from .conftest import MakeScope, Names, Rig, Vendor, ask


@pytest_asyncio.fixture
async def plain(names: Names) -> AsyncIterator[aioredis.Redis]:
    """A plain redis-py client, to look at what the batching client wrote."""
    client = aioredis.Redis.from_url(settings.REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_commands_of_one_turn_share_one_round_trip_and_keep_their_replies(
    redis_client: BatchingRedis, names: Names
) -> None:
    key = f"k_{names.token}"
    await redis_client.ping()  # connected: a SELECT of a database other than 0 is written apart
    before = redis_client.round_trips

    replies = await asyncio.gather(
        redis_client.set(key, "v"),
        redis_client.get(key),
        redis_client.rpush(f"{key}:list", "a", "b"),
        redis_client.hset(f"{key}:hash", mapping={"used": 3}),
        redis_client.hmget(f"{key}:hash", ["used", "missing"]),
    )

    assert replies == [True, b"v", 2, 1, [b"3", None]]
    assert redis_client.round_trips - before == 1


@pytest.mark.asyncio
async def test_sequential_commands_each_take_their_own_round_trip(
    redis_client: BatchingRedis, names: Names
) -> None:
    await redis_client.ping()  # connected: a SELECT of a database other than 0 is written apart
    before = redis_client.round_trips
    for i in range(3):
        await redis_client.set(f"k_{names.token}_{i}", i)
    assert redis_client.round_trips - before == 3


@pytest.mark.asyncio
async def test_a_failing_command_fails_alone(redis_client: BatchingRedis, names: Names) -> None:
    key = f"k_{names.token}"
    await redis_client.set(key, "not a number")

    replies = await asyncio.gather(
        redis_client.incr(key),
        redis_client.get(key),
        redis_client.incr(f"{key}:n"),
        return_exceptions=True,
    )

    assert isinstance(replies[0], ResponseError)
    assert "not an integer" in str(replies[0])
    assert replies[1:] == [b"not a number", 1]


@pytest.mark.asyncio
async def test_a_lua_script_survives_a_script_flush(
    redis_client: BatchingRedis, plain: aioredis.Redis, names: Names
) -> None:
    # given a registered script whose SHA the server forgot (a restart, a failover)
    script = redis_client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    key = f"k_{names.token}"
    assert await script(keys=[key], args=[2]) == 2
    await plain.script_flush()

    # the NOSCRIPT error reaches redis-py's Script, which loads the script and retries
    assert await script(keys=[key], args=[3]) == 5


@pytest.mark.asyncio
async def test_a_cancelled_caller_does_not_shift_the_replies_of_the_others(
    redis_client: BatchingRedis, names: Names
) -> None:
    key = f"k_{names.token}"
    await redis_client.set(key, "mine")
    # a command that blocks on the server for a while, then one queued right behind it
    slow = asyncio.ensure_future(redis_client.blpop([f"{key}:empty"], timeout=0.3))
    await asyncio.sleep(0.05)
    behind = asyncio.ensure_future(redis_client.get(key))
    await asyncio.sleep(0.05)

    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow

    assert await behind == b"mine"  # not BLPOP's nil
    assert await redis_client.get(key) == b"mine"


@pytest.mark.asyncio
async def test_a_lost_connection_fails_the_waiting_commands_and_the_next_one_reconnects(
    redis_client: BatchingRedis, plain: aioredis.Redis, names: Names
) -> None:
    key = f"k_{names.token}"
    await redis_client.client_setname(f"batching_{names.token}")
    waiting = asyncio.ensure_future(redis_client.blpop([f"{key}:empty"], timeout=5))
    await asyncio.sleep(0.05)

    # the server drops the connection (a restart, a network cut, CLIENT KILL)
    killed = 0
    for client in await plain.client_list():
        if client.get("name") == f"batching_{names.token}":
            killed = await plain.execute_command("CLIENT KILL", "ID", client["id"])
    assert killed == 1

    with pytest.raises(RedisConnectionError):
        await waiting
    assert await redis_client.set(key, "again") is True
    assert await plain.get(key) == b"again"


@pytest.mark.asyncio
async def test_a_command_past_the_socket_timeout_is_a_timeout_error(names: Names) -> None:
    client = BatchingRedis.from_url(settings.REDIS_URL, socket_timeout=0.2)
    try:
        with pytest.raises(RedisTimeoutError):
            await client.blpop([f"k_{names.token}:empty"], timeout=1)
        # a fresh connection: BLPOP's late nil reply can't be read as this command's
        assert await client.set(f"k_{names.token}", 1) is True
        assert await client.get(f"k_{names.token}") == b"1"
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_the_url_database_is_selected(plain: aioredis.Redis, names: Names) -> None:
    # a database this session's Redis URL does not name (xdist workers each have their own)
    base, own = settings.REDIS_URL.rsplit("/", 1)
    db = 15 if own != "15" else 14
    client = BatchingRedis.from_url(f"{base}/{db}")
    other = aioredis.Redis.from_url(f"{base}/{db}")
    key = f"k_{names.token}"
    try:
        await client.set(key, f"in db {db}")
        assert await other.get(key) == f"in db {db}".encode()
        assert await plain.get(key) is None
    finally:
        await other.delete(key)
        await client.aclose()
        await other.aclose()


@pytest.fixture
def private_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own: it gets a password, which the shared one must not."""
    data_dir = Path(tempfile.mkdtemp(prefix="aisaas-test-redis-"))
    server = EmbeddedRedis(data_dir=data_dir, port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.asyncio
async def test_a_password_in_the_url_authenticates_and_a_wrong_one_is_refused(
    private_redis: EmbeddedRedis,
) -> None:
    admin = aioredis.Redis.from_url(private_redis.url)
    await admin.config_set("requirepass", "s3cret")
    await admin.aclose()
    good = BatchingRedis.from_url(f"redis://:s3cret@127.0.0.1:{private_redis.port}/0")
    bad = BatchingRedis.from_url(f"redis://:wrong@127.0.0.1:{private_redis.port}/0")
    try:
        assert await good.set("k", 1) is True
        with pytest.raises(AuthenticationError):
            await bad.get("k")
    finally:
        await good.config_set("requirepass", "")
        await good.aclose()
        await bad.aclose()


def test_a_tls_url_falls_back_to_redis_pys_own_connections() -> None:
    assert BatchingRedis.from_url("rediss://127.0.0.1:6380/0").multiplexed is False
    assert BatchingRedis.from_url("redis://127.0.0.1:6380/0").multiplexed is True


# --- the gateway on it ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_gateway_call_costs_two_round_trips_hit_or_miss(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor, redis_client: BatchingRedis
) -> None:
    scope = make_scope({"openai": openai_fake.provider})
    await rig.gateway.chat(scope, ask("a first call loads the Lua scripts"))
    before = redis_client.round_trips
    await rig.gateway.chat(scope, ask("one question"))  # a miss: reserve + GET, then the writes
    miss = redis_client.round_trips - before
    await rig.gateway.chat(scope, ask("one question"))  # a hit
    hit = redis_client.round_trips - before - miss

    assert (miss, hit) == (2, 2)
    assert [r.cached for r in rig.records[1:]] == [False, True]


@pytest.mark.asyncio
async def test_a_denied_call_is_not_counted_as_a_cache_hit(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor
) -> None:
    # given an answer in the cache, then a budget too small for another call
    providers = {"openai": openai_fake.provider}
    await rig.gateway.chat(make_scope(providers), ask("one question"))
    tight = make_scope(providers, limits=Limits(workspace_day_tokens=1))

    with pytest.raises(BudgetExceededError):
        await rig.gateway.chat(tight, ask("one question"))

    denied = rig.records[-1]
    assert (denied.status, denied.cached, denied.error_code) == ("error", False, "budget_exceeded")
