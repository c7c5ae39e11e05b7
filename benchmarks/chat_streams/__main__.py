"""`python -m benchmarks.chat_streams`: ramp N, print the table or JSON."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

from .. import common
from . import rig

DEFAULT_RAMP = (1, 50, 100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000)
REFERENCE = "LiteLLM 1, Portkey 32, Bifrost 128 streams held (published proxy benchmark)"
GOAL = 500
TEXT = "Explain why a chat server should reserve a token budget before it calls a model"


def _overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def _cpu(samples: list[list[float]], start: float, end: float) -> float:
    """daphne's CPU use between two instants, in % of one core, from the sampled totals."""
    inside = [s for s in samples if start <= s[0] <= end]
    if len(inside) < 2:
        return float("nan")
    (t0, c0, *_), (t1, c1, *_) = inside[0], inside[-1]
    return 100.0 * (c1 - c0) / (t1 - t0) if t1 > t0 else float("nan")


def _stats(values: list[float]) -> dict[str, float] | None:
    """p50 / p90 / p95 / p99 / mean / max, or None without values."""
    if not values:
        return None
    return {**common.summary(values), "p95": common.percentile(values, 0.95)}


def analyse(
    n: int, raw: dict[str, Any], rate: float, stall_s: float, max_ttft: float
) -> dict[str, Any]:
    """One step's figures from the load generator's timestamps."""
    nominal = 1.0 / rate
    streams = raw["streams"]
    opened = [s for s in streams if s["opened"]]
    gaps: list[float] = []
    ttft: list[float] = []
    done_after_last: list[float] = []
    intervals: list[tuple[float, float]] = []
    stalled = 0
    incomplete: dict[str, int] = {}
    tokens = 0
    for s in streams:
        times = s["tokens"]
        tokens += len(times)
        own = [b - a for a, b in itertools.pairwise(times)]
        gaps += own
        if times:
            ttft.append(times[0] - s["sent"])
            intervals.append((times[0], times[-1]))
            if s["done"] is not None:
                done_after_last.append(s["done"] - times[-1])
        if s["status"] != "complete":
            why = s["closed_early"] or s["status"] or "no done before the deadline"
            if s["errors"]:
                why += f" ({s['errors'][0]})"
            incomplete[why[:120]] = incomplete.get(why[:120], 0) + 1
        elif any(g > stall_s for g in own):
            stalled += 1
    added = [g - nominal for g in gaps]
    first = min((a for a, _ in intervals), default=raw["sent"])
    last = max((b for _, b in intervals), default=raw["ended"])
    window = max(last - first, 1e-9)
    samples = raw["server_samples"]
    late = sum(1 for t in ttft if max_ttft and t > max_ttft)
    passed = len(opened) == n and not incomplete and stalled == 0 and not late
    return {
        "n": n,
        "opened": len(opened),
        "connect_s": raw["connected"] - raw["connect_started"],
        "complete": sum(1 for s in streams if s["status"] == "complete"),
        "incomplete": incomplete,
        "stalled_streams": stalled,
        "late_first_token": late,
        "peak_concurrent_streams": _overlap(intervals),
        "tokens": tokens,
        "tokens_per_s": tokens / window,
        "ttft_s": _stats(ttft),
        "added_gap_ms": _stats([1000 * a for a in added]),
        "max_gap_ms": 1000 * max(gaps) if gaps else None,
        "done_after_last_token_ms": _stats([1000 * d for d in done_after_last]),
        "server_cpu_pct": _cpu(samples, first, last),
        "server_threads_max": max((int(s[2]) for s in samples), default=0),
        "server_fds_max": max((int(s[3]) for s in samples), default=0),
        "db_connections_max": raw["peak_db_connections"],
        "db_sessions_opened": raw["db_sessions_opened"],
        "loadgen_cpu_pct": 100.0 * raw["loadgen_cpu_s"] / max(raw["ended"] - raw["sent"], 1e-9),
        "connect_failures": raw["connect_failures"],
        "passed": passed,
    }


def _f(value: float | None, spec: str = ".0f") -> str:
    return "–" if value is None or value != value else format(value, spec)


def render(report: dict[str, Any]) -> str:
    m, v = report["machine"], report["versions"]
    head = (
        f"  {'N':>5} {'open':>5} {'done':>5} {'peak':>5} {'ttft p50':>8} {'p95':>6} {'max':>6}"
        f" {'added p50':>9} {'p95':>6} {'p99':>6} {'max gap':>7} {'stall':>5} {'late':>5}"
        f" {'tok/s':>6} {'srv cpu':>7} {'gen cpu':>7}  result"
    )
    rows = []
    for s in report["steps"]:
        t, a = s["ttft_s"] or {}, s["added_gap_ms"] or {}
        result = "pass" if s["passed"] else "FAIL"
        if s["incomplete"]:
            result += " " + "; ".join(f"{k} ×{c}" for k, c in list(s["incomplete"].items())[:2])
        rows.append(
            f"  {s['n']:>5} {s['opened']:>5} {s['complete']:>5} {s['peak_concurrent_streams']:>5}"
            f" {_f(t.get('p50'), '.2f'):>8} {_f(t.get('p95'), '.2f'):>6}"
            f" {_f(t.get('max'), '.2f'):>6}"
            f" {_f(a.get('p50'), '.1f'):>9} {_f(a.get('p95')):>6} {_f(a.get('p99')):>6}"
            f" {_f(s['max_gap_ms']):>7} {s['stalled_streams']:>5} {s['late_first_token']:>5}"
            f" {_f(s['tokens_per_s']):>6}"
            f" {_f(s['server_cpu_pct']):>6}% {_f(s['loadgen_cpu_pct']):>6}%  {result}"
        )
    best = report["largest_n_passed"]
    lines = [
        f"Chat streams: N WebSockets on one daphne process, the offline local model at "
        f"{report['tokens_per_second']:g} tokens/s ({1000 / report['tokens_per_second']:g} ms "
        f"between tokens); a step passes when every answer completes, no gap between two tokens "
        f"exceeds {report['stall_s']:g} s (stall) and every first token comes within "
        f"{report['max_ttft_s']:g} s of the send (late; 0: not checked)",
        f"command:  {report['command']}",
        f"machine:  {m['cores']} cores, {m['cpu']}, {m['platform']}",
        f"software: Python {m['python']}, Django {v['django']}, channels {v['channels']}, "
        f"channels-redis {v['channels-redis']}, daphne {v['daphne']}, Twisted {v['twisted']}, "
        f"autobahn {v['autobahn']}, redis-py {v['redis']}, psycopg {v['psycopg']}",
        f"settings: {report['settings']}; open files limit {report['nofile']}; PostgreSQL "
        f"max_connections {report['postgres_max_connections']}",
        f"date:     {report['date']}; load average {m['load_average']} at start, "
        f"{report['load_average_end']} at end",
        "",
        "  ttft = send → first token (s; p50 / p95 / max); added = gap between two tokens − "
        f"{1000 / report['tokens_per_second']:g} ms (ms);",
        "  peak = most answers streaming at one instant; cpu = % of one core while tokens flow",
        "  (ttft 0.25 s of it is the local model's nominal first-token latency)",
        "",
        head,
        *rows,
        "",
        f"largest N that passed: {best} (goal ≥ {GOAL}; reference: {REFERENCE})",
        f"most answers streaming at once in a step with no stall: {report['peak_held']}",
        "server: "
        + "; ".join(
            f"N={s['n']}: {s['server_threads_max']} threads, {s['server_fds_max']} fds, "
            f"{s['db_connections_max']} DB conn. at most, {s['db_sessions_opened']} opened"
            for s in report["steps"][-3:]
        ),
    ]
    if report["stopped_because"]:
        lines.append(f"ramp stopped: {report['stopped_because']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Concurrent chat WebSockets (issue #5).")
    parser.add_argument(
        "--ramp",
        default=",".join(map(str, DEFAULT_RAMP)),
        help="comma-separated socket counts, tried in order",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="local model tokens/s")
    parser.add_argument("--stall", type=float, default=1.0, help="a gap longer is a stall (s)")
    parser.add_argument(
        "--max-ttft", type=float, default=5.0, help="a later first token fails the step (s)"
    )
    parser.add_argument("--deadline", type=float, default=90.0, help="per step, after sending")
    parser.add_argument("--max-minutes", type=float, default=10.0, help="stop the ramp after")
    parser.add_argument(
        "--keep-going", action="store_true", help="run every step, even after a failure"
    )
    parser.add_argument("--log-level", default="INFO", help="the server's LOG_LEVEL")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    ramp = [int(x) for x in args.ramp.split(",") if x.strip()]
    if not ramp or min(ramp) < 1 or args.rate <= 0:
        parser.error("--ramp needs positive counts and --rate a positive rate")
    nofile = rig.raise_fd_limit()
    settings = rig.SETTINGS
    started, machine = time.monotonic(), common.machine()
    steps: list[dict[str, Any]] = []
    stopped = ""
    nonce = os.urandom(4).hex()  # every prompt is unique: the exact cache never answers
    with (
        rig.workdir() as workdir,
        rig.chat_server(
            workdir,
            conversations=sum(ramp),
            tokens_per_second=args.rate,
            log_level=args.log_level,
            settings=settings,
        ) as server,
    ):
        ids = server.conversations
        used = 0
        for step, n in enumerate(ramp):
            if time.monotonic() - started > 60 * args.max_minutes:
                stopped = f"the {args.max_minutes:g}-minute cap, before N={n}"
                break
            rig.say(f"N={n}: opening sockets")
            job = {
                "port": server.port,
                "host": server.host,
                "path": "/ws/chat/",
                "cookie": server.cookie,
                "conversations": ids[used : used + n],
                "settle_s": 1.0,
                "deadline_s": args.deadline,
                "text": TEXT,
                "nonce": nonce,
                "step": step,
            }
            used += n
            raw = rig.run_loadgen(job, server)
            result = analyse(n, raw, args.rate, args.stall, args.max_ttft)
            steps.append(result)
            rig.say(
                f"N={n}: {'pass' if result['passed'] else 'FAIL'}, {result['complete']} complete,"
                f" peak {result['peak_concurrent_streams']} streaming, added p95 "
                f"{_f((result['added_gap_ms'] or {}).get('p95'))} ms, max gap {_f(result['max_gap_ms'])} ms, "
                f"daphne {_f(result['server_cpu_pct'])}% CPU"
            )
            if server.process.poll() is not None:
                stopped = f"daphne exited with {server.process.returncode} at N={n}"
                break
            if not result["passed"] and not args.keep_going:
                stopped = f"the first failing step, N={n}"
                break
            time.sleep(3)  # disconnects and the last answers' bookkeeping settle
        postgres_max = server.postgres_max_connections
    passed = [s["n"] for s in steps if s["passed"]]
    report = {
        "benchmark": "chat_streams",
        "command": common.command("benchmarks.chat_streams"),
        "date": common.now(),
        "machine": machine,
        "load_average_end": common.load_average(),
        "versions": {
            name: version(dist)
            for name, dist in (
                ("django", "Django"),
                ("channels", "channels"),
                ("channels-redis", "channels_redis"),
                ("daphne", "daphne"),
                ("twisted", "Twisted"),
                ("autobahn", "autobahn"),
                ("redis", "redis"),
                ("psycopg", "psycopg"),
            )
        },
        "settings": settings,
        "nofile": list(nofile),
        "postgres_max_connections": postgres_max,
        "tokens_per_second": args.rate,
        "stall_s": args.stall,
        "max_ttft_s": args.max_ttft,
        "steps": steps,
        # The largest N below which every step passed (a pass after a failure does not count).
        "largest_n_passed": max(
            (s["n"] for i, s in enumerate(steps) if all(t["passed"] for t in steps[: i + 1])),
            default=0,
        ),
        "passed": passed,
        "peak_held": max(
            (
                s["peak_concurrent_streams"]
                for s in steps
                if not s["incomplete"] and not s["stalled_streams"]
            ),
            default=0,
        ),
        "stopped_because": stopped,
        "elapsed_s": time.monotonic() - started,
    }
    sys.stdout.write((json.dumps(report, indent=2) if args.json else render(report)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
