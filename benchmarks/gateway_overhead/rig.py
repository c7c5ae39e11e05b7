"""The rig: a zero-latency fake OpenAI server, the gateway wired to real Redis, the direct SDK."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from openai import AsyncOpenAI

from apps.llm.core.budget import BudgetStore
from apps.llm.core.cache import ExactCache
from apps.llm.core.context import Actor, CallScope, CallSink, CreditLimit, DebitPort, Limits
from apps.llm.core.gateway import Gateway
from apps.llm.core.providers.openai import OpenAIProvider
from apps.llm.core.redis_batching import BatchingRedis
from apps.llm.core.routing import AliasRoutes, Route, RoutingTable
from apps.llm.core.types import ChatRequest, Message

if TYPE_CHECKING:
    from tests.fakes import FakeOpenAIServer

MODEL = "gpt-4.1-mini"  # genai-prices knows it, so metering takes the real pricing path
ALIAS = "fast"
MAX_TOKENS = 256
PROMPT = "Summarise in one sentence why a budget is reserved before a model call."


# --- the fake provider ----------------------------------------------------------------------


def _zero_latency_server() -> FakeOpenAIServer:
    """The fake OpenAI server with no token delay and Nagle's algorithm off.

    BaseHTTPRequestHandler writes the headers and the body in two sends; with Nagle on, the
    body waits for the client's delayed ACK (~40 ms on Linux), latency no real provider has.
    Set here, in the benchmark's own process, so the tests' fakes are untouched.
    """
    from tests.fakes import FakeOpenAIServer
    from tests.fakes.server import _Handler

    _Handler.disable_nagle_algorithm = True
    return FakeOpenAIServer(token_delay=0, max_lifetime=86400)


def _serve(conn: Connection) -> None:
    """Child process: serve the fake OpenAI API until the parent says stop."""
    server = _zero_latency_server().start()
    conn.send(server.base_url)
    with suppress(EOFError):
        conn.recv()
    server.stop()


@contextmanager
def fake_openai(where: str) -> Iterator[str]:
    """The fake server's base URL. In its own process by default, as a real provider is: its
    request handling then neither holds our GIL nor competes with our event loop thread."""
    if where == "thread":
        with _zero_latency_server() as server:
            yield server.base_url
        return
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(child,), daemon=True)
    process.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("The fake OpenAI server did not start within 60 s.")
        yield str(parent.recv())
    finally:
        parent.send("stop")
        process.join(10)
        if process.is_alive():
            process.terminate()


# --- the two clients --------------------------------------------------------------------------


@dataclass
class Clients:
    gateway: Gateway
    scope: CallScope
    direct: AsyncOpenAI
    redis: BatchingRedis
    gateway_calls: int = 0
    cache_hits: int = 0


def _call_sink(client: aioredis.Redis) -> CallSink:
    """The production sink. It lives in a Django app: set Django up (no database is used)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aisaas.settings.test")
    # httpx2 logs every request at INFO, in both series alike; it would only add noise.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    django.setup()
    from apps.traces.services import RedisCallSink

    return RedisCallSink(client)


def _debit_port(client: aioredis.Redis) -> DebitPort:
    """The production debit port (one RPUSH per charged call); needs Django set up first."""
    from apps.billing.debit_queue import LedgerDebit

    return LedgerDebit(client)


def build_clients(redis_url: str, base_url: str) -> Clients:
    """The core gateway with the production ports (Redis budget, cache, call-record queue) and
    the direct SDK client, both pointed at the same fake server."""
    client = BatchingRedis.from_url(redis_url)  # the production client, as in apps/llm/adapters
    sink = _call_sink(client)  # sets Django up
    gateway = Gateway(
        budget=BudgetStore(client), cache=ExactCache(client), sink=sink, debit=_debit_port(client)
    )
    routing = RoutingTable(
        aliases={
            ALIAS: AliasRoutes(
                alias=ALIAS,
                primary=Route(provider="openai", model=MODEL),
                fallback=None,
                offline=Route(provider="local", model="local-fast"),
            )
        }
    )
    scope = CallScope(
        schema="bench",
        workspace_id=1,
        actor=Actor(type="user", id="1"),
        feature="benchmark",
        routing=routing,
        providers={"openai": OpenAIProvider(api_key="sk-bench", base_url=base_url)},
        limits=Limits(workspace_day_tokens=10**15, user_day_requests=10**12),
        user_id=1,  # two daily scopes, as for a signed-in user: workspace tokens, user requests
        # and the credit balance, as for every workspace (issue #7): a third reserved scope
        credit=CreditLimit(balance_micros=10**15, seq=0),
    )
    direct = AsyncOpenAI(api_key="sk-bench", base_url=base_url, max_retries=0)
    return Clients(gateway=gateway, scope=scope, direct=direct, redis=client)


def chat_request(text: str) -> ChatRequest:
    return ChatRequest(
        alias=ALIAS, messages=(Message(role="user", content=text),), max_tokens=MAX_TOKENS
    )


async def gateway_call(clients: Clients, request: ChatRequest) -> None:
    response = await clients.gateway.chat(clients.scope, request)
    clients.gateway_calls += 1
    clients.cache_hits += response.cached


async def direct_call(clients: Clients, text: str) -> str:
    reply = await clients.direct.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": text}],
        max_completion_tokens=MAX_TOKENS,
        timeout=60.0,
    )
    return reply.choices[0].message.content or ""
