"""The leased outbox on real Redis: claimed items leave only when acknowledged, a consumer that
dies holding them gives them back when its lease ends, and released items come back first."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from apps.common.outbox import LeasedOutbox
from tests.gateway_support import redis_client


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    client = redis_client()
    yield client
    client.close()


@pytest.fixture
def key(client: redis.Redis) -> Iterator[str]:
    key = f"test:outbox:{uuid.uuid4().hex[:8]}"
    yield key
    client.delete(key, f"{key}:processing", f"{key}:dead")


def _outbox(client: redis.Redis, key: str, clock: Clock) -> LeasedOutbox:
    return LeasedOutbox(client, key, dead_letter_key=f"{key}:dead", lease_seconds=60, clock=clock)


def test_claimed_items_stay_until_acknowledged(client: redis.Redis, key: str) -> None:
    clock = Clock()
    outbox = _outbox(client, key, clock)
    client.rpush(key, b"a", b"b", b"c")

    assert outbox.claim(2) == [b"a", b"b"]
    assert outbox.pending() == (1, 2)
    outbox.ack([b"a"])
    assert outbox.pending() == (1, 1)
    # a second consumer meanwhile gets only what nobody holds
    assert outbox.claim(10) == [b"c"]
    assert outbox.claim(10) == []


def test_a_dead_consumers_items_are_claimed_again_when_its_lease_ends(
    client: redis.Redis, key: str
) -> None:
    clock = Clock()
    dead = _outbox(client, key, clock)
    client.rpush(key, b"a", b"b")
    assert dead.claim(10) == [b"a", b"b"]  # ... and the consumer is killed here

    alive = _outbox(client, key, clock)
    clock.now += 59
    assert alive.claim(10) == []  # still leased
    clock.now += 2
    assert sorted(alive.claim(10)) == [b"a", b"b"]
    alive.ack([b"a", b"b"])
    assert alive.pending() == (0, 0)


def test_released_items_come_back_first(client: redis.Redis, key: str) -> None:
    clock = Clock()
    outbox = _outbox(client, key, clock)
    client.rpush(key, b"a", b"b", b"c")
    assert outbox.claim(1) == [b"a"]
    outbox.release([b"a"])  # e.g. the database refused the batch: retry at the next run

    assert outbox.claim(2) == [b"a", b"b"]


def test_dead_letters_keep_what_is_given_and_leave_the_outbox(
    client: redis.Redis, key: str
) -> None:
    outbox = _outbox(client, key, Clock())
    client.rpush(key, b"secret bob@example.com", b"fine")
    items = outbox.claim(10)

    outbox.dead_letter(items[:1], kept=["secret [EMAIL]"])

    assert client.lrange(f"{key}:dead", 0, -1) == [b"secret [EMAIL]"]
    assert outbox.pending() == (0, 1)  # only "fine" is still claimed
