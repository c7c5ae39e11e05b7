"""Every Redis client gives up on a stalled Redis in seconds: a loopback listener that accepts
connections and never answers stands in for one (tests/fakes/redis_proxy.py). Health turns red
naming the part; the cache, the channel layer and the Celery broker raise instead of hanging.
Each operation runs in a daemon thread with a deadline, so a client that would hang forever
fails its test instead of hanging the run."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

from aisaas.celery import app
from tests.fakes.redis_proxy import StalledRedis

pytestmark = pytest.mark.django_db


@pytest.fixture
def stalled() -> Iterator[StalledRedis]:
    with StalledRedis(settings.REDIS_URL) as server:
        yield server


def bounded(work: Callable[[], Any], *, seconds: float) -> tuple[Any, BaseException | None]:
    """(result, error) of `work`, which must end within `seconds` (or the test fails)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting on the stalled Redis after {seconds} s"
    outcome["elapsed"] = time.monotonic() - started
    return outcome.get("result"), outcome.get("error")


def test_health_turns_red_naming_redis_and_celery(settings, monkeypatch, public_client, stalled):
    settings.REDIS_URL = stalled.url
    monkeypatch.setitem(app.conf, "broker_url", stalled.url)

    response, error = bounded(lambda: public_client.get("/healthz"), seconds=10)

    assert error is None
    assert response.status_code == 503
    report = response.json()
    assert report["failing"] == "redis,celery"
    assert report["redis"].startswith("error: TimeoutError")
    assert report["db"] == "ok"


def test_the_cache_raises_instead_of_hanging(stalled):
    cache = RedisCache(stalled.url, {**settings.CACHES["default"], "LOCATION": stalled.url})

    _, error = bounded(lambda: cache.get("anything"), seconds=4)  # redis-py alone waits 5 s

    assert isinstance(error, RedisError)


def test_the_channel_layer_raises_instead_of_hanging(stalled):
    config = cast(dict[str, Any], settings.CHANNEL_LAYERS["default"]["CONFIG"])
    host = {**config["hosts"][0], "address": stalled.url}
    layer = RedisChannelLayer(hosts=[host], prefix="stalled")

    async def send() -> None:
        try:
            await layer.send("somebody", {"type": "hello"})
        finally:
            await layer.close_pools()  # closes the connections, sends nothing

    _, error = bounded(lambda: asyncio.run(send()), seconds=12)  # its blocking reads wait 5 s

    assert isinstance(error, RedisError)


def test_the_celery_broker_raises_instead_of_hanging(stalled):
    def publish() -> None:
        with app.connection_for_write(url=stalled.url) as broker:
            broker.ensure_connection(max_retries=0)
            broker.default_channel.client.lpush("celery-stalled", "x")

    _, error = bounded(publish, seconds=8)

    assert error is not None
    assert "timeout" in repr(error).lower() or "timed out" in repr(error).lower(), repr(error)
