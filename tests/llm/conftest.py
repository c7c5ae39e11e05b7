"""The gateway on real Redis: the core `Gateway` assembled by hand, scopes built by hand, and
loopback fake vendors speaking the Anthropic and OpenAI wire protocols.

Redis is the test profile's own server (`settings.REDIS_URL`). Each test gets fresh names — a
reservation prefix and uuid-suffixed schema names, under which budgets and the cache keep their
keys — and everything under them is deleted at teardown, so tests never see each other's keys.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from django.conf import settings

from apps.llm.core.budget import BudgetStore, ScopeUsage
from apps.llm.core.cache import ExactCache
from apps.llm.core.context import Actor, CallRecord, CallScope, Limits, daily_scopes
from apps.llm.core.gateway import Gateway, GatewaySettings
from apps.llm.core.providers.anthropic import AnthropicProvider
from apps.llm.core.providers.base import Provider
from apps.llm.core.providers.local import LocalProvider
from apps.llm.core.providers.openai import OpenAIProvider
from apps.llm.core.redis_batching import BatchingRedis
from apps.llm.core.resilience import CircuitBreaker
from apps.llm.core.routing import RoutingTable
from apps.llm.core.types import ChatRequest, Message, StreamEvent, TokenEvent
from tests.fakes import FakeAnthropicServer, FakeOpenAIServer
from tests.fakes.server import FakeServer

KEY = "sk-test-Zq9SECRETkey01234wxyz"
ALIAS = "smart"
# The model each provider answers `smart` with: genai-prices knows the two vendor models.
MODELS = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-4.1", "local": "local-smart"}
# A reply of common words, each one cl100k token with its leading space (the fakes stream one
# word per chunk), so "k tokens streamed" and "k tokens counted" are the same number.
LONG_REPLY = " ".join(["the", "cat", "sat", "on", "the", "mat", "and", "then", "it", "slept"] * 4)


def ask(text: str = "hello world", **options: Any) -> ChatRequest:
    """A `smart` request with one user message."""
    return ChatRequest(
        alias=options.pop("alias", ALIAS), messages=(Message("user", text),), **options
    )


def routing(primary: str, fallback: str | None = None) -> RoutingTable:
    """`smart` → primary provider, then fallback provider (models from MODELS)."""
    spec: dict[str, Any] = {
        "primary": {"provider": primary, "model": MODELS[primary]},
        "offline": {"provider": "local", "model": MODELS["local"]},
    }
    if fallback is not None:
        spec["fallback"] = {"provider": fallback, "model": MODELS[fallback]}
    return RoutingTable.from_dict({"aliases": {ALIAS: spec}})


def both(pair: tuple[Vendor, Vendor]) -> dict[str, Any]:
    """`make_scope` arguments: both vendors configured, `smart` routed primary → fallback."""
    primary, fallback = pair
    return {
        "providers": {primary.name: primary.provider, fallback.name: fallback.provider},
        "primary": primary.name,
        "fallback": fallback.name,
    }


def tokens_of(events: list[StreamEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, TokenEvent)]


class ListSink:
    """A CallSink that keeps the records in memory."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    async def record(self, record: CallRecord) -> None:
        self.records.append(record)


@dataclass
class Names:
    """Redis names unique to one test; `purge` deletes every key that contains the token."""

    client: aioredis.Redis
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def prefix(self) -> str:
        """The BudgetStore prefix: reservations and their expiry index."""
        return f"testllm_{self.token}"

    def schema(self, name: str = "acme") -> str:
        return f"{name}_{self.token}"

    async def purge(self) -> None:
        keys = [key async for key in self.client.scan_iter(match=f"*{self.token}*", count=1000)]
        if keys:
            await self.client.delete(*keys)


@dataclass
class Rig:
    """A gateway on real Redis and what a test inspects: its budget store, breaker, records."""

    gateway: Gateway
    budget: BudgetStore
    breaker: CircuitBreaker
    sink: ListSink

    @property
    def records(self) -> list[CallRecord]:
        return self.sink.records

    @property
    def record(self) -> CallRecord:
        """The one record a single call left."""
        assert len(self.records) == 1, self.records
        return self.records[0]

    async def usage(self, scope: CallScope) -> dict[str, ScopeUsage]:
        """Today's counters of `scope`, by scope name."""
        found = await self.budget.usage(daily_scopes(scope, tokens=0))
        return {u.name: u for u in found}

    async def tokens_used(self, scope: CallScope) -> int:
        return (await self.usage(scope))["workspace_day_tokens"].used

    async def assert_nothing_reserved(self, scope: CallScope) -> None:
        """No reservation is open, and none of the scope's counters holds a reserved amount."""
        assert await self.budget.open_reservations() == 0
        usage = await self.usage(scope)
        assert {name: u.reserved for name, u in usage.items()} == dict.fromkeys(usage, 0)


@dataclass
class Vendor:
    """A fake vendor server and a provider (our adapter, through the official SDK) aimed at it."""

    name: str
    server: FakeServer
    provider: Provider

    @property
    def calls(self) -> int:
        """Requests the server received."""
        return len(self.server.requests)


MakeRig = Callable[..., Rig]
MakeScope = Callable[..., CallScope]


@pytest_asyncio.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = BatchingRedis.from_url(settings.REDIS_URL)  # the gateway's production client
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def names(redis_client: aioredis.Redis) -> AsyncIterator[Names]:
    found = Names(redis_client)
    try:
        yield found
    finally:
        await found.purge()


@pytest.fixture
def make_rig(redis_client: aioredis.Redis, names: Names) -> MakeRig:
    def make(
        *,
        breaker: CircuitBreaker | None = None,
        gateway_settings: GatewaySettings | None = None,
    ) -> Rig:
        gateway_settings = gateway_settings or GatewaySettings(retry_after_cap=1.0)
        budget = BudgetStore(
            redis_client, prefix=names.prefix, reservation_ttl=gateway_settings.reservation_ttl
        )
        breaker = breaker or CircuitBreaker()
        sink = ListSink()
        gateway = Gateway(
            budget=budget,
            cache=ExactCache(redis_client),
            sink=sink,
            breaker=breaker,
            settings=gateway_settings,
        )
        return Rig(gateway=gateway, budget=budget, breaker=breaker, sink=sink)

    return make


@pytest.fixture
def rig(make_rig: MakeRig) -> Rig:
    return make_rig()


@pytest.fixture
def make_scope(names: Names) -> MakeScope:
    def make(
        providers: Mapping[str, Provider],
        *,
        primary: str | None = None,
        fallback: str | None = None,
        schema: str | None = None,
        limits: Limits | None = None,
        user_id: int | None = None,
        workspace_id: int = 1,
        timeout: float = 5.0,
        request_id: str | None = None,
        byok: frozenset[str] = frozenset(),
    ) -> CallScope:
        """A scope whose `smart` alias routes to `primary` (default: the first provider) and
        `fallback`. The schema name is unique to the test unless given."""
        return CallScope(
            schema=schema or names.schema(),
            workspace_id=workspace_id,
            actor=Actor("user", str(user_id)) if user_id else Actor("system", "tests"),
            feature="chat",
            routing=routing(primary or next(iter(providers)), fallback),
            providers=providers,
            limits=limits or Limits(),
            user_id=user_id,
            timeout=timeout,
            request_id=request_id,
            byok=byok,
        )

    return make


@pytest.fixture
def local() -> LocalProvider:
    """The offline model, answering at once."""
    return LocalProvider(tokens_per_second=0)


def _started(name: str, *, api_key: str | None = None) -> Vendor:
    if name == "anthropic":
        anthropic_server = FakeAnthropicServer(api_key=api_key).start()
        return Vendor(
            name,
            anthropic_server,
            AnthropicProvider(api_key=KEY, base_url=anthropic_server.base_url),
        )
    openai_server = FakeOpenAIServer(api_key=api_key).start()
    return Vendor(name, openai_server, OpenAIProvider(api_key=KEY, base_url=openai_server.base_url))


@pytest_asyncio.fixture
async def start_vendor() -> AsyncIterator[Callable[..., Vendor]]:
    """Start fake vendors on demand; all are stopped (and their clients closed) at teardown."""
    started: list[Vendor] = []

    def start(name: str, *, api_key: str | None = None) -> Vendor:
        vendor = _started(name, api_key=api_key)
        started.append(vendor)
        return vendor

    yield start
    for vendor in started:
        assert isinstance(vendor.provider, AnthropicProvider | OpenAIProvider)
        await vendor.provider.aclose()
        vendor.server.stop()


@pytest.fixture
def anthropic_fake(start_vendor: Callable[..., Vendor]) -> Vendor:
    return start_vendor("anthropic")


@pytest.fixture
def openai_fake(start_vendor: Callable[..., Vendor]) -> Vendor:
    return start_vendor("openai")


@pytest.fixture(params=["anthropic", "openai"])
def vendor(request: pytest.FixtureRequest, start_vendor: Callable[..., Vendor]) -> Vendor:
    """Each fake vendor in turn."""
    return start_vendor(request.param)


@pytest.fixture(params=[("anthropic", "openai"), ("openai", "anthropic")], ids=lambda p: p[0])
def pair(
    request: pytest.FixtureRequest, start_vendor: Callable[..., Vendor]
) -> tuple[Vendor, Vendor]:
    """(primary, fallback): each vendor in turn as the primary, the other as its fallback."""
    primary, fallback = request.param
    return start_vendor(primary), start_vendor(fallback)
