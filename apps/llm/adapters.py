"""Django glue, part 2: the gateway's ports wired to our Redis and our call-record queue.

redis.asyncio clients belong to the event loop that created them, so the gateway is built once
per loop (daphne has one; each `async_to_sync` call from sync code may have another).
"""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from django.conf import settings

from apps.traces.services import RedisCallSink

from .config import nominal_rate
from .core.budget import BudgetStore
from .core.cache import ExactCache
from .core.gateway import Gateway, GatewaySettings
from .core.resilience import CircuitBreaker

# Breakers are per process, shared by every loop in it.
BREAKER = CircuitBreaker()
_gateways: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Gateway] = (
    weakref.WeakKeyDictionary()
)


def redis_client() -> aioredis.Redis:
    return aioredis.Redis.from_url(settings.REDIS_URL)


def gateway() -> Gateway:
    """The gateway for the running event loop."""
    loop = asyncio.get_running_loop()
    found = _gateways.get(loop)
    if found is None:
        client = redis_client()
        found = Gateway(
            budget=BudgetStore(client, reservation_ttl=settings.LLM_RESERVATION_TTL),
            cache=ExactCache(client),
            sink=RedisCallSink(client),
            breaker=BREAKER,
            settings=GatewaySettings(
                reservation_ttl=settings.LLM_RESERVATION_TTL, nominal_rate=nominal_rate()
            ),
        )
        _gateways[loop] = found
    return found
