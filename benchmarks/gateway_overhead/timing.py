"""Timing: interleaved phases, the per-stage breakdown, Redis command counts, overhead."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio as aioredis

from apps.llm.core.providers.base import Embeddings, Provider, ProviderCall
from apps.llm.core.types import ProviderEvent, ProviderResponse

from .. import common
from .rig import PROMPT, Clients, chat_request, direct_call, gateway_call

Stage = Callable[[Any], Awaitable[None]]


@dataclass
class Series:
    gateway: list[float]  # ms
    direct: list[float]  # ms, same iterations


async def _ms(call: Awaitable[object]) -> float:
    start = time.perf_counter_ns()
    await call
    return (time.perf_counter_ns() - start) / 1e6


async def run_phase(
    clients: Clients, *, hit: bool, calls: int, tag: str, rng: random.Random
) -> Series:
    """`calls` iterations of one gateway and one direct call, in random order."""
    series = Series(gateway=[], direct=[])
    hits_before = clients.cache_hits
    for i in range(calls):
        text = PROMPT if hit else f"{PROMPT} [{tag} {i}]"
        request = chat_request(text)  # built outside the clock, like the direct call's dict
        on_gateway = gateway_call(clients, request)
        if rng.random() < 0.5:
            series.direct.append(await _ms(direct_call(clients, text)))
            series.gateway.append(await _ms(on_gateway))
        else:
            series.gateway.append(await _ms(on_gateway))
            series.direct.append(await _ms(direct_call(clients, text)))
    hits = clients.cache_hits - hits_before
    if hits != (calls if hit else 0):  # a miss phase that hit, or the reverse, measures nothing
        raise RuntimeError(f"{tag}: {hits} of {calls} gateway calls were cache hits")
    return series


class _TimedProvider:
    """Wraps the provider to time its share (adapter + SDK + HTTP + fake server)."""

    def __init__(self, inner: Provider, times: list[float]):
        self._inner = inner
        self._times = times
        self.name = inner.name
        self.offline = inner.offline

    async def complete(self, call: ProviderCall) -> ProviderResponse:
        start = time.perf_counter_ns()
        try:
            return await self._inner.complete(call)
        finally:
            self._times.append((time.perf_counter_ns() - start) / 1e3)

    def stream(self, call: ProviderCall) -> AsyncGenerator[ProviderEvent, None]:
        return self._inner.stream(call)

    async def embed(self, texts: Sequence[str], *, model: str, timeout: float) -> Embeddings:
        return await self._inner.embed(texts, model=model, timeout=timeout)


def _timed_stage(stage: Stage, times: list[float]) -> Stage:
    async def run(call: Any) -> None:
        start = time.perf_counter_ns()
        try:
            await stage(call)
        finally:
            times.append((time.perf_counter_ns() - start) / 1e3)

    return run


async def run_breakdown(
    clients: Clients, *, calls: int, rng: random.Random
) -> dict[str, list[float]]:
    """Cache-miss calls with every stage timed (µs). A separate pass: the wrappers cost ~1 µs
    per stage, which the headline figures should not carry."""
    gateway = clients.gateway
    times: dict[str, list[float]] = defaultdict(list)
    before, after, scope = gateway.before_call, gateway.after_call, clients.scope
    together = gateway.after_call_together
    gateway.before_call = tuple(_timed_stage(s, times[s.__name__]) for s in before)
    gateway.after_call = tuple(_timed_stage(s, times[s.__name__]) for s in after)
    gateway.after_call_together = tuple(_timed_stage(s, times[s.__name__]) for s in together)
    provider = _TimedProvider(scope.providers["openai"], times["provider call"])
    clients.scope = replace(scope, providers={"openai": provider})
    try:
        series = await run_phase(clients, hit=False, calls=calls, tag="breakdown", rng=rng)
    finally:
        gateway.before_call, gateway.after_call, clients.scope = before, after, scope
        gateway.after_call_together = together
    stages = [s.__name__ for s in (*before,)] + ["provider call"]
    stages += [s.__name__ for s in (*after, *together)]
    totals = [g * 1e3 for g in series.gateway]
    accounted = [sum(times[name][i] for name in stages) for i in range(calls)]
    ordered = {name: times[name] for name in stages}
    ordered["rest (call setup, shield, reply)"] = [
        t - a for t, a in zip(totals, accounted, strict=True)
    ]
    ordered["gateway call, total"] = totals
    ordered["direct SDK call"] = [d * 1e3 for d in series.direct]
    return ordered


@contextmanager
def counting_commands(client: aioredis.Redis) -> Iterator[Counter[str]]:
    """Count the commands the client sends (each one a round trip; a Lua script is one)."""
    counts: Counter[str] = Counter()
    execute = client.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        counts[str(args[0]).upper()] += 1
        return await execute(*args, **options)

    client.execute_command = counted  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        del client.execute_command  # back to the class's method


def overhead(series: Series) -> dict[str, dict[str, float]]:
    gw, direct = common.summary(series.gateway), common.summary(series.direct)
    paired = [g - d for g, d in zip(series.gateway, series.direct, strict=True)]
    return {
        "quantile_difference": {k: gw[k] - direct[k] for k in common.QUANTILES},
        "paired_difference": common.summary(paired),
    }


def per_call(counts: Counter[str], calls: int) -> dict[str, float]:
    return {"total": sum(counts.values()) / calls} | {
        name: n / calls for name, n in sorted(counts.items())
    }
