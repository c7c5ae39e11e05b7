"""Timing: interleaved phases, the per-stage breakdown, Redis command counts, overhead."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from apps.llm.core.gateway import Together
from apps.llm.core.providers.base import Embeddings, Provider, ProviderCall
from apps.llm.core.redis_batching import BatchingRedis
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


def _timed_stage(stage: Stage, times: dict[str, list[float]]) -> Stage:
    """Time the stage; for a group that runs together, time each member too."""
    if isinstance(stage, Together):
        stage = Together(*(_timed_stage(s, times) for s in stage.stages))
    name = stage.__name__

    async def run(call: Any) -> None:
        start = time.perf_counter_ns()
        try:
            await stage(call)
        finally:
            times[name].append((time.perf_counter_ns() - start) / 1e3)

    run.__name__ = name
    return run


def _rows(stages: Sequence[Stage]) -> list[tuple[str, str]]:
    """(series name, row label) per stage; a group's members are indented under it."""
    rows = []
    for stage in stages:
        rows.append((stage.__name__, stage.__name__))
        if isinstance(stage, Together):
            rows += [(s.__name__, f"  ↳ {s.__name__}") for s in stage.stages]
    return rows


async def run_breakdown(
    clients: Clients, *, calls: int, rng: random.Random
) -> dict[str, list[float]]:
    """Cache-miss calls with every stage timed (µs). A separate pass: the wrappers cost ~1 µs
    per stage, which the headline figures should not carry. Members of a group run at the same
    time, so only the group's own time counts towards the total."""
    gateway = clients.gateway
    times: dict[str, list[float]] = defaultdict(list)
    before, after, scope = gateway.before_call, gateway.after_call, clients.scope
    gateway.before_call = tuple(_timed_stage(s, times) for s in before)
    gateway.after_call = tuple(_timed_stage(s, times) for s in after)
    provider = _TimedProvider(scope.providers["openai"], times["provider call"])
    clients.scope = replace(scope, providers={"openai": provider})
    try:
        series = await run_phase(clients, hit=False, calls=calls, tag="breakdown", rng=rng)
    finally:
        gateway.before_call, gateway.after_call, clients.scope = before, after, scope
    rows = [*_rows(before), ("provider call", "provider call"), *_rows(after)]
    counted = [s.__name__ for s in before] + ["provider call"] + [s.__name__ for s in after]
    totals = [g * 1e3 for g in series.gateway]
    accounted = [sum(times[name][i] for name in counted) for i in range(calls)]
    ordered = {label: times[name] for name, label in rows}
    ordered["rest (call setup, shield, reply)"] = [
        t - a for t, a in zip(totals, accounted, strict=True)
    ]
    ordered["gateway call, total"] = totals
    ordered["direct SDK call"] = [d * 1e3 for d in series.direct]
    return ordered


@contextmanager
def counting_commands(client: BatchingRedis) -> Iterator[Counter[str]]:
    """Count the commands the client sends, and its round trips (a pipeline is one)."""
    counts: Counter[str] = Counter()
    execute = client.execute_command
    round_trips = client.round_trips

    async def counted(*args: Any, **options: Any) -> Any:
        counts[str(args[0]).upper()] += 1
        return await execute(*args, **options)

    client.execute_command = counted  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        del client.execute_command  # back to the class's method
        counts["round trips"] = client.round_trips - round_trips


def overhead(series: Series) -> dict[str, dict[str, float]]:
    gw, direct = common.summary(series.gateway), common.summary(series.direct)
    paired = [g - d for g, d in zip(series.gateway, series.direct, strict=True)]
    return {
        "quantile_difference": {k: gw[k] - direct[k] for k in common.QUANTILES},
        "paired_difference": common.summary(paired),
    }


def per_call(counts: Counter[str], calls: int) -> dict[str, float]:
    commands = {name: n for name, n in counts.items() if name != "round trips"}
    return {
        "total": sum(commands.values()) / calls,
        "round trips": counts["round trips"] / calls,
    } | {name: n / calls for name, n in sorted(commands.items())}
