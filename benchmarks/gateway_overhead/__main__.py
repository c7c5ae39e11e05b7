"""`python -m benchmarks.gateway_overhead`: run the phases, print the table or JSON."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

from .. import common
from .rig import PROMPT, build_clients, chat_request, fake_openai, gateway_call
from .timing import counting_commands, overhead, per_call, run_breakdown, run_phase

TARGET_P50_MS = 1.0
TARGET_P99_MS = 5.0
COUNTED_HITS = 100  # hit calls whose Redis commands are counted


def _commands(counts: dict[str, float]) -> str:
    parts = ", ".join(
        f"{name} {n:g}" for name, n in counts.items() if name not in ("total", "round trips")
    )
    return f"{counts['total']:g} ({parts}) in {counts['round trips']:g} round trips"


def render(report: dict[str, Any]) -> str:
    m, r, v = report["machine"], report["results"], report["versions"]
    miss = r["miss"]["overhead"]
    lines = [
        f"Gateway overhead: {report['calls']} calls per phase after {report['warmup']} warm-up "
        f"calls; fake OpenAI server in a {report['server']}",
        f"command:  {report['command']}",
        f"machine:  {m['cores']} cores, {m['cpu']}, {m['platform']}",
        f"software: Python {m['python']}, openai {v['openai']}, redis-py {v['redis']}, "
        f"redis-server {v['redis-server']}, genai-prices {v['genai-prices']}",
        f"date:     {report['date']}; load average {m['load_average']} at start, "
        f"{report['load_average_end']} at end",
        "",
        common.header("milliseconds"),
        "  cache miss",
        common.row("direct SDK call", r["miss"]["direct"]),
        common.row("gateway call", r["miss"]["gateway"]),
        common.row("overhead: gateway − direct quantiles", miss),
        common.row("overhead: paired differences", r["miss"]["paired"]),
        "  cache hit (the provider is not called)",
        common.row("direct SDK call", r["hit"]["direct"]),
        common.row("gateway call", r["hit"]["gateway"]),
        "",
        common.header("breakdown of a miss, microseconds"),
        *(common.row(name, stats) for name, stats in r["breakdown"].items()),
        "",
        f"target (miss): overhead p50 ≤ {TARGET_P50_MS:g} ms → {miss['p50']:.3f} ms "
        f"({'met' if miss['p50'] <= TARGET_P50_MS else 'MISSED'}); "
        f"p99 ≤ {TARGET_P99_MS:g} ms → {miss['p99']:.3f} ms "
        f"({'met' if miss['p99'] <= TARGET_P99_MS else 'MISSED'})",
        f"Redis commands per gateway call: miss {_commands(r['miss']['redis_commands'])}; "
        f"hit {_commands(r['hit']['redis_commands'])}",
        f"checks: {report['checks']['open_reservations']} reservations left open; "
        f"{report['checks']['records_queued']} call records queued for "
        f"{report['checks']['gateway_calls']} gateway calls",
    ]
    return "\n".join(lines)


async def measure(args: argparse.Namespace, redis_url: str, base_url: str) -> dict[str, Any]:
    clients = build_clients(redis_url, base_url)
    from apps.traces.services import QUEUE_KEY  # after Django is set up

    await clients.redis.config_set("save", "")  # no background snapshots (forks) mid-run
    rng = random.Random(args.seed)  # noqa: S311 - a coin for the call order, not a secret
    started = common.machine()
    try:
        await run_phase(clients, hit=False, calls=args.warmup, tag="warm-up", rng=rng)
        gc.collect()
        miss = await run_phase(clients, hit=False, calls=args.calls, tag="miss", rng=rng)
        await gateway_call(clients, chat_request(PROMPT))  # stores the entry the hits read
        await run_phase(clients, hit=True, calls=args.warmup, tag="warm-up hit", rng=rng)
        gc.collect()
        hit = await run_phase(clients, hit=True, calls=args.calls, tag="hit", rng=rng)
        gc.collect()
        with counting_commands(clients.redis) as miss_commands:
            breakdown = await run_breakdown(clients, calls=args.calls, rng=rng)
        with counting_commands(clients.redis) as hit_commands:
            await run_phase(clients, hit=True, calls=COUNTED_HITS, tag="counted", rng=rng)
        checks = {
            "open_reservations": await clients.gateway.budget.open_reservations(),
            "records_queued": int(await clients.redis.llen(QUEUE_KEY)),
            "gateway_calls": clients.gateway_calls,
        }
        server_version = (await clients.redis.info("server"))["redis_version"]
    finally:
        await clients.direct.close()
        await clients.scope.providers["openai"].aclose()  # type: ignore[attr-defined]
        await clients.redis.aclose()
    miss_overhead, hit_overhead = overhead(miss), overhead(hit)
    return {
        "benchmark": "gateway_overhead",
        "command": common.command("benchmarks.gateway_overhead"),
        "date": common.now(),
        "calls": args.calls,
        "warmup": args.warmup,
        "server": "separate process" if args.server == "process" else "thread of this process",
        "machine": started,
        "load_average_end": common.load_average(),
        "versions": {
            "openai": version("openai"),
            "redis": version("redis"),
            "redis-server": server_version,
            "genai-prices": version("genai-prices"),
        },
        "results": {
            "miss": {
                "direct": common.summary(miss.direct),
                "gateway": common.summary(miss.gateway),
                "overhead": miss_overhead["quantile_difference"],
                "paired": miss_overhead["paired_difference"],
                "redis_commands": per_call(miss_commands, args.calls),
            },
            "hit": {
                "direct": common.summary(hit.direct),
                "gateway": common.summary(hit.gateway),
                "overhead": hit_overhead["quantile_difference"],
                "paired": hit_overhead["paired_difference"],
                "redis_commands": per_call(hit_commands, COUNTED_HITS),
            },
            "breakdown": {name: common.summary(values) for name, values in breakdown.items()},
        },
        "checks": checks,
        "target_met": miss_overhead["quantile_difference"]["p50"] <= TARGET_P50_MS
        and miss_overhead["quantile_difference"]["p99"] <= TARGET_P99_MS,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The gateway's in-process overhead (issue #3).")
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per phase")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured calls per phase")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=3, help="seed of the call-order coin")
    parser.add_argument(
        "--server",
        choices=("process", "thread"),
        default="process",
        help="run the fake server in its own process (default) or in a thread of this one",
    )
    args = parser.parse_args(argv)
    if args.calls < 2 or args.warmup < 0:
        parser.error("--calls must be at least 2 and --warmup at least 0")
    with common.embedded_redis() as redis_url, fake_openai(args.server) as base_url:
        report = asyncio.run(measure(args, redis_url, base_url))
    sys.stdout.write((json.dumps(report, indent=2) if args.json else render(report)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
