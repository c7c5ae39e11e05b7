"""With Redis stalled (accepting, never answering), the API answers in seconds with a 503 naming
Redis instead of hanging, and /healthz turns red: daphne runs on a loopback proxy to the test
Redis (tests/fakes/redis_proxy.py), stalled once daphne is up."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest
from django.conf import settings

from tests.asgi_server import AsgiServer, daphne
from tests.fakes.redis_proxy import RedisProxy

from .conftest import Key, MakeKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def stalled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsgiServer]:
    with RedisProxy(settings.REDIS_URL) as proxy:
        env = {"REDIS_URL": proxy.url, "REDIS_SOCKET_TIMEOUT": "1", "REDIS_CONNECT_TIMEOUT": "1"}
        log = tmp_path_factory.mktemp("daphne-stalled") / "daphne.log"
        with daphne(log=log, env=env) as server:
            proxy.stall()
            yield server


def test_a_model_call_is_a_503_naming_redis(stalled_server: AsgiServer, make_key: MakeKey) -> None:
    key: Key = make_key()
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}

    started = time.monotonic()
    response = httpx.post(
        stalled_server.url("/v1/chat/completions"),
        json=body,
        headers={"authorization": f"Bearer {key.secret}"},
        timeout=30,
    )

    assert time.monotonic() - started < 10
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "service_unavailable"
    assert "Redis" in error["message"]


def test_health_is_red_naming_redis(stalled_server: AsgiServer) -> None:
    response = httpx.get(stalled_server.url("/healthz"), timeout=30)

    assert response.status_code == 503
    assert "redis" in response.json()["failing"].split(",")
