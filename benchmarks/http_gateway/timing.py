"""The measurements: load-generator jobs in a child process, CPU accounting, the statistics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import common
from .rig import MODEL, ROOT, Server, Upstream, reply, say

DIRECT_MODEL = f"direct-{MODEL}"  # the upstream counts direct and proxied calls apart
P99_LIMIT_MS = 100.0
GAP_LIMIT_MS = 1000.0
SLOW = {"delay_ms": 50.0, "interval_ms": 50.0, "tokens": 40}  # the stall test's upstream


@dataclass(frozen=True)
class Plan:
    """How much to measure; `--quick` shrinks it."""

    calls: int  # measured pairs per concurrency-1 phase
    warmup: int
    rates: tuple[float, ...]  # offered requests/s of the ramp
    step_seconds: float
    refine: int  # bisections between the last passing and the first failing rate
    streams: tuple[int, ...]
    seed: int


FULL = Plan(
    calls=250,
    warmup=25,
    rates=(5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 600, 800, 1200),
    step_seconds=5.0,
    refine=2,
    streams=(10, 25, 50, 100, 200, 400, 800),
    seed=4,
)
QUICK = Plan(
    calls=80,
    warmup=10,
    rates=(5, 10, 20, 40, 80, 160, 320, 640),
    step_seconds=2.0,
    refine=1,
    streams=(10, 25, 50, 100, 200, 400),
    seed=4,
)


def run_job(job: dict[str, Any], *, timeout: float = 600.0) -> dict[str, Any]:
    """One load-generator job in its own process (its CPU is not the servers')."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.http_gateway.loadgen"],
        cwd=ROOT,
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed ({job['job']}):\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout))


# --- CPU accounting -------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[1] is ppid; utime, stime, cutime, cstime are fields 14-17 of the full line.
    return int(fields[1]), sum(int(x) for x in fields[11:15]) / _TICK


def cpu_seconds(roots: Iterable[int]) -> float:
    """CPU used so far by the process trees under `roots`: every live process counts its own
    time and that of the children it has reaped, so short-lived workers are not lost."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _stat(int(entry))) is not None:
            parents[int(entry)], cpu[int(entry)] = found
    wanted = set(roots)
    total = 0.0
    for pid, seconds in cpu.items():
        walk = pid
        while walk > 1:
            if walk in wanted:
                total += seconds
                break
            walk = parents.get(walk, 0)
    return total


# --- statistics -----------------------------------------------------------------------------


def _values(series: Sequence[float | None]) -> list[float]:
    return [v for v in series if v is not None]


def _summary(series: Sequence[float | None]) -> dict[str, float] | None:
    values = _values(series)
    return common.summary(values) if values else None


def _difference(
    proxy: dict[str, float] | None, direct: dict[str, float] | None
) -> dict[str, float] | None:
    if proxy is None or direct is None:
        return None
    return {k: proxy[k] - direct[k] for k in ("p50", "p90", "p99", "mean")}


def _paired(
    proxy: Sequence[float | None], direct: Sequence[float | None]
) -> dict[str, float] | None:
    diffs = [p - d for p, d in zip(proxy, direct, strict=True) if p is not None and d is not None]
    return common.summary(diffs) if diffs else None


def _counts(side: dict[str, Any]) -> dict[str, Any]:
    return {k: side[k] for k in ("requests", "ok", "failed", "non_2xx", "statuses", "errors")}


# --- phases ---------------------------------------------------------------------------------


class Session:
    """Measures one server (or the bare upstream) against the shared upstream."""

    def __init__(self, upstream: Upstream, plan: Plan, server: Server | None, cpu_roots: list[int]):
        self.upstream = upstream
        self.plan = plan
        self.server = server
        self.cpu_roots = cpu_roots

    def direct(self, tokens: int = 20) -> dict[str, Any]:
        return {**self.upstream.target(tokens), "model": DIRECT_MODEL}

    def proxy(self, tokens: int = 20) -> dict[str, Any]:
        assert self.server is not None
        return {**self.server.target, "reply": reply(tokens)}

    def _job(self, job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run a job; also return what the upstream saw and the CPU the server used."""
        self.upstream.reset()
        before = cpu_seconds(self.cpu_roots) if self.cpu_roots else 0.0
        result = run_job(job)
        after = cpu_seconds(self.cpu_roots) if self.cpu_roots else 0.0
        stats = self.upstream.stats()
        sent = result.pop("sent")
        seen = {
            # Equal when every proxied request reached the upstream exactly once: no cache
            # answer, no retry.
            "proxied_requests": sent.get(self.server.name, 0) if self.server else 0,
            "proxied_upstream_calls": stats.get(f"model:{MODEL}", 0),
            "direct_requests": sent.get("direct", 0),
            "direct_upstream_calls": stats.get(f"model:{DIRECT_MODEL}", 0),
            "server_cpu_s": after - before,
            "upstream_peak_connections": stats.get("peak_connections", 0),
        }
        return result, seen

    def pairs(self, *, stream: bool, delay_ms: float) -> dict[str, Any]:
        """Concurrency 1, interleaved with direct calls: overhead (JSON) or added TTFT (SSE)."""
        plan = self.plan
        self.upstream.configure(delay_ms=delay_ms)
        job = {
            "job": "pairs",
            "direct": self.direct(),
            "proxy": self.proxy(),
            "stream": stream,
            "calls": plan.calls,
            "warmup": plan.warmup,
            "seed": plan.seed,
            "tag": f"{'sse' if stream else 'json'} {delay_ms:g}",
        }
        result, seen = self._job(job)
        direct, proxy = result["direct"], result["proxy"]
        key = "ttft_ms" if stream else "latency_ms"
        proxied = max(1, seen["proxied_requests"])
        out: dict[str, Any] = {
            "direct": _summary(direct[key]),
            "proxy": _summary(proxy[key]),
            "added": _difference(_summary(proxy[key]), _summary(direct[key])),
            "paired": _paired(proxy[key], direct[key]),
            "direct_counts": _counts(direct),
            "proxy_counts": _counts(proxy),
            **seen,
            "server_cpu_ms_per_request": 1000 * seen["server_cpu_s"] / proxied,
        }
        if stream:
            out["direct_total"] = _summary(direct["latency_ms"])
            out["proxy_total"] = _summary(proxy["latency_ms"])
        return out

    def ramp(
        self,
        *,
        delay_ms: float,
        target: dict[str, Any] | None = None,
        rates: Sequence[float] | None = None,
        step_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Open-loop steps of offered load until p99 ≥ 100 ms or an error."""
        plan = self.plan
        self.upstream.configure(delay_ms=delay_ms)
        job = {
            "job": "ramp",
            "target": target or self.proxy(),
            "rates": list(rates or plan.rates),
            "step_seconds": step_seconds or plan.step_seconds,
            "p99_limit_ms": P99_LIMIT_MS,
            "refine": plan.refine,
            "timeout": 10,
            "max_outstanding": 1000,
        }
        result, seen = self._job(job)
        sent = sum(step["requests"] for step in result["steps"])
        result.update(seen)
        result["client_requests"] = sent
        return result

    def streams(
        self, *, target: dict[str, Any] | None = None, counts: Sequence[int] | None = None
    ) -> dict[str, Any]:
        """Waves of N concurrent slow streams until one stalls (gap > 1 s) or fails."""
        self.upstream.configure(**SLOW)  # type: ignore[arg-type]
        job = {
            "job": "streams",
            "target": target or self.proxy(int(SLOW["tokens"])),
            "counts": list(counts or self.plan.streams),
            "spread_s": 1.0,
            "gap_limit_ms": GAP_LIMIT_MS,
            "timeout": 60,
        }
        result, seen = self._job(job)
        result.update(seen)
        return result


def measure_server(session: Session, delays: Sequence[float]) -> dict[str, Any]:
    """Everything for one proxy: per upstream delay, the two concurrency-1 phases and the
    ramp; then the stall test."""
    assert session.server is not None
    name = session.server.name
    out: dict[str, Any] = {"by_delay": {}}
    for delay in delays:
        say(f"{name}, upstream {delay:g} ms: concurrency 1, JSON")
        json_pairs = session.pairs(stream=False, delay_ms=delay)
        say(f"{name}, upstream {delay:g} ms: concurrency 1, SSE")
        sse_pairs = session.pairs(stream=True, delay_ms=delay)
        say(f"{name}, upstream {delay:g} ms: open-loop ramp")
        ramp = session.ramp(delay_ms=delay)
        out["by_delay"][f"{delay:g}"] = {"json": json_pairs, "sse": sse_pairs, "ramp": ramp}
    say(f"{name}: concurrent slow streams")
    out["streams"] = session.streams()
    return out


def measure_rig(session: Session) -> dict[str, Any]:
    """The same load with no proxy: what the upstream and the client manage on their own."""
    say("rig alone: open-loop ramp against the upstream, 0 ms")
    top = max(session.plan.rates)
    rates = [top / 8, top / 4, top / 2, top]  # only to show the rig is not the limit
    ramp = session.ramp(delay_ms=0, target=session.direct(), rates=rates, step_seconds=2.0)
    say("rig alone: slow streams against the upstream")
    top = max(session.plan.streams)
    streams = session.streams(target=session.direct(int(SLOW["tokens"])), counts=[top])
    return {"ramp": ramp, "streams": streams}
