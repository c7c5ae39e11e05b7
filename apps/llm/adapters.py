"""Django glue, part 2: the gateway built on our Redis with the ports the layers above plugged
in (ports.py), and the event loop that sync code (tasks, commands, views) runs it on.

redis.asyncio clients and SDK connection pools belong to the event loop that opened them, so the
gateway is built once per loop. Sync callers share one long-lived loop in a daemon thread
(`run_sync`): with `async_to_sync` every call got a fresh loop, hence a fresh gateway and Redis
pool that were never closed (the cache entry keeps its loop alive), and SDK clients whose pooled
connections belonged to a dead loop — the first request of each call failed and was retried.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings

from apps.common.outbox import db_outbox_drain, db_outbox_put

from .config import nominal_rate
from .core.budget import BudgetStore
from .core.cache import ExactCache
from .core.gateway import Gateway, GatewaySettings
from .core.gateway.durable import KeptWrite
from .core.redis_batching import BatchingRedis
from .core.resilience import CircuitBreaker
from .ports import ports

T = TypeVar("T")

# Breakers are per process, shared by every loop in it.
BREAKER = CircuitBreaker()
_gateways: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Gateway] = (
    weakref.WeakKeyDictionary()
)
_gateways_lock = threading.Lock()


def redis_client() -> aioredis.Redis:
    """The gateway's client: commands of stages that run together share a round trip."""
    return BatchingRedis.from_url(settings.REDIS_URL, **settings.REDIS_TIMEOUTS)


# The database outbox kind of after-call writes Redis refused (the gateway's durable writes).
AFTER_CALL_OUTBOX = "llm.after_call"


class DatabaseOutbox:
    """The gateway's fallback outbox: an after-call write Redis refused becomes a row in the
    database (apps/common/outbox.py), performed by `after_call_writes_replay`."""

    async def keep(self, write: KeptWrite) -> None:
        # Through JSON: the record's trace is plain data, and anything else is kept as text.
        payload = json.loads(json.dumps(write.to_json(), default=str))
        await sync_to_async(db_outbox_put, thread_sensitive=False)(
            kind=AFTER_CALL_OUTBOX, payload=payload
        )


async def _replay(payload: dict[str, Any]) -> None:
    await gateway().durable.replay(KeptWrite.from_json(payload))


def after_call_writes_replay() -> int:
    """Perform the after-call writes kept in the database, oldest first; return how many."""
    return db_outbox_drain(
        kind=AFTER_CALL_OUTBOX, perform=lambda payload: run_sync(_replay(payload))
    )


def gateway() -> Gateway:
    """The gateway for the running event loop."""
    loop = asyncio.get_running_loop()
    with _gateways_lock:
        found = _gateways.get(loop)
        if found is None:
            # A closed loop's gateway can never run again; its Redis pool references the loop,
            # so the weak key alone would never let it go.
            for closed in [other for other in _gateways if other.is_closed()]:
                del _gateways[closed]
            client = redis_client()
            found = Gateway(
                budget=BudgetStore(client, reservation_ttl=settings.LLM_RESERVATION_TTL),
                cache=ExactCache(client),
                sink=ports.sink(client),
                debit=ports.debit(client),
                outbox=DatabaseOutbox(),
                breaker=BREAKER,
                settings=GatewaySettings(
                    reservation_ttl=settings.LLM_RESERVATION_TTL, nominal_rate=nominal_rate()
                ),
            )
            _gateways[loop] = found
        return found


class _SyncLoop:
    """One event loop in a daemon thread per process, for sync callers. Started on first use,
    and again in a forked child (a Celery prefork worker inherits the object, not the thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if self._loop is None or self._pid != os.getpid() or not alive:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="llm-gateway-loop", daemon=True
                )
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError("Called from async code: await the async variant instead.")
        # The caller's context variables (request id, log bindings) follow the call.
        context = contextvars.copy_context()

        async def in_context() -> T:
            for var, value in context.items():
                var.set(value)
            return await coro

        future = asyncio.run_coroutine_threadsafe(in_context(), self.loop())
        try:
            return future.result()
        except BaseException:
            # Interrupted (a task's time limit, Ctrl-C): cancel the call, so the gateway settles
            # what was produced instead of running on unobserved.
            future.cancel()
            raise


_sync_loop = _SyncLoop()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a gateway coroutine from sync code and return its result (or raise its error)."""
    return _sync_loop.run(coro)
