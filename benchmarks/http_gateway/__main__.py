"""`python -m benchmarks.http_gateway`: LiteLLM's proxy and our /v1 side by side, one run.

Both stand in front of the same fake upstream, one at a time (two cores: never both under
load). For each, at 0 ms and 50 ms of upstream latency: overhead at concurrency 1, added
time to first token, and the highest open-loop rate with p99 < 100 ms; then how many
concurrent slow streams it holds without a stall. Progress goes to stderr; the table (or
`--json`) to stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

from .. import common
from .rig import ROOT, aisaas_server, ensure_litellm_venv, litellm_proxy, litellm_versions, say
from .rig import upstream as start_upstream
from .rig import workdir as make_workdir
from .timing import (
    FULL,
    GAP_LIMIT_MS,
    P99_LIMIT_MS,
    QUICK,
    SLOW,
    Session,
    measure_rig,
    measure_server,
)

TARGETS = ("litellm", "aisaas")


def _git() -> str:
    def run(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - argv built here, no outside input
            [shutil.which("git") or "/usr/bin/git", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()

    commit = run("rev-parse", "--short", "HEAD")
    return commit + (
        " + uncommitted changes" if run("status", "--porcelain", "--untracked-files=no") else ""
    )


# --- rendering ------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _pair(stats: dict[str, float] | None, a: str = "p50", b: str = "p99") -> str:
    if stats is None:
        return "—"
    return f"{_ms(stats[a])} / {_ms(stats[b])}"


def _why(step: dict[str, Any] | None) -> str:
    """Why a ramp step failed, in a few words."""
    if step is None:
        return "none failed"
    reasons = []
    if step["aborted"]:
        reasons.append(f"{step['outstanding_peak']} outstanding")
    if step["failed"]:
        reasons.append(f"{step['failed']} failed")
    if step["p99_ms"] >= P99_LIMIT_MS:
        reasons.append(f"p99 {step['p99_ms']:.0f} ms")
    reasons.append(f"{step['achieved_rps']:.0f}/s served")
    return f"{step['rate']:g}/s: " + ", ".join(reasons)


def _ramp_cells(ramp: dict[str, Any]) -> tuple[str, str]:
    best = ramp["max_passing_rate"]
    steps = {s["rate"]: s for s in ramp["steps"]}
    if best is None:
        passing = "none"
    else:
        step = steps[best]
        passing = f"{best:g}/s (p50 {step['p50_ms']:.1f}, p99 {step['p99_ms']:.1f} ms)"
    worst = ramp["first_failing_rate"]
    return passing, _why(steps.get(worst) if worst is not None else None)


def _waves_cells(streams: dict[str, Any]) -> tuple[str, str]:
    best = streams["max_streams_passed"]
    waves = {w["streams"]: w for w in streams["waves"]}
    passing = "none" if best is None else f"{best} (max gap {waves[best]['max_gap_ms']:.0f} ms)"
    failed = [w for w in streams["waves"] if not w["passed"]]
    if not failed:
        return passing, "none failed"
    wave = failed[0]
    parts = [f"max gap {wave['max_gap_ms']:.0f} ms", f"TTFT p50 {wave['ttft_p50_ms']:.0f} ms"]
    if wave["failed"]:
        parts.append(f"{wave['failed']} failed")
    return passing, f"{wave['streams']}: " + ", ".join(parts)


def _non_2xx(result: dict[str, Any]) -> str:
    """Non-2xx answers and other failures through the proxy, over every phase."""
    non_2xx = failed = 0
    for phases in result["by_delay"].values():
        for phase in ("json", "sse"):
            non_2xx += phases[phase]["proxy_counts"]["non_2xx"]
            failed += phases[phase]["proxy_counts"]["failed"]
        for step in phases["ramp"]["steps"]:
            non_2xx += step["non_2xx"]
            failed += step["failed"]
    for wave in result["streams"]["waves"]:
        non_2xx += wave["non_2xx"]
        failed += wave["failed"]
    return f"{non_2xx} / {failed}"


def _calls(result: dict[str, Any]) -> str:
    """Proxied requests sent, and upstream calls they caused (equal: no cache hit, no retry)."""
    phases = [p for d in result["by_delay"].values() for p in (d["json"], d["sse"], d["ramp"])]
    phases.append(result["streams"])
    sent = sum(p["proxied_requests"] for p in phases)
    seen = sum(p["proxied_upstream_calls"] for p in phases)
    return f"{sent} → {seen}" + ("" if sent == seen else "  MISMATCH: cache or retries!")


def render(report: dict[str, Any]) -> str:
    m, v = report["machine"], report["versions"]
    results, rig = report["results"], report["rig"]
    names = [n for n in report["targets"] if n in results]
    width = 42

    def line(label: str, cells: Sequence[str]) -> str:
        return f"  {label:<34}" + "".join(f"{c:<{width}}" for c in cells)

    lite = v.get("litellm", {})
    lines = [
        "HTTP gateway: LiteLLM proxy vs aisaas /v1/chat/completions, same fake upstream",
        f"command:  {report['command']}",
        f"machine:  {m['cores']} cores, {m['cpu']}, {m['platform']}",
        f"software: Python {m['python']}; "
        + (
            f"litellm {lite['litellm']} (uvicorn {lite['uvicorn']}, uvloop {lite['uvloop']}, "
            f"fastapi {lite['fastapi']}, httpx {lite['httpx']}, aiohttp {lite['aiohttp']}); "
            if lite
            else ""
        )
        + f"aisaas {v['aisaas']} (daphne {v['daphne']}, Twisted {v['twisted']}, "
        f"Django {v['django']}, openai {v['openai']})",
        f"date:     {report['date']}; load average {m['load_average']} at start, "
        f"{report['load_average_end']} at end; took {report['seconds']:.0f} s",
        f"plan:     {report['plan']['calls']} pairs per concurrency-1 phase; ramp steps of "
        f"{report['plan']['step_seconds']:g} s; streams of {SLOW['tokens']} tokens "
        f"{SLOW['interval_ms']:g} ms apart",
        "",
        f"  rig alone (no proxy): open loop {_ramp_cells(rig['ramp'])[0]}; "
        f"{rig['streams']['waves'][0]['streams']} slow streams, max gap "
        f"{rig['streams']['waves'][0]['max_gap_ms']:.0f} ms",
        "",
        line("milliseconds", names),
    ]
    for name, error in report["errors"].items():
        lines.append(f"  {name}: NOT MEASURED: {error}")
    if not names:
        return "\n".join(lines)
    for delay in report["delays"]:
        key = f"{delay:g}"
        rows = {n: results[n]["by_delay"][key] for n in names}
        lines.append(f"  upstream latency {delay:g} ms")
        lines += [
            line("direct p50 / p99", [_pair(rows[n]["json"]["direct"]) for n in names]),
            line("via proxy p50 / p99", [_pair(rows[n]["json"]["proxy"]) for n in names]),
            line("overhead p50 / p99", [_pair(rows[n]["json"]["added"]) for n in names]),
            line("  paired differences", [_pair(rows[n]["json"]["paired"]) for n in names]),
            line(
                "server CPU per request",
                [f"{rows[n]['json']['server_cpu_ms_per_request']:.2f}" for n in names],
            ),
            line("TTFT direct p50 / p99", [_pair(rows[n]["sse"]["direct"]) for n in names]),
            line("TTFT via proxy p50 / p99", [_pair(rows[n]["sse"]["proxy"]) for n in names]),
            line("added TTFT p50 / p99", [_pair(rows[n]["sse"]["added"]) for n in names]),
            line(
                f"max req/s, p99 < {P99_LIMIT_MS:g} ms",
                [_ramp_cells(rows[n]["ramp"])[0] for n in names],
            ),
            line("  first failing step", [_ramp_cells(rows[n]["ramp"])[1] for n in names]),
        ]
    lines.append(
        f"  slow streams ({SLOW['tokens']} tokens, {SLOW['interval_ms']:g} ms apart), "
        f"stall = no byte for {GAP_LIMIT_MS / 1000:g} s"
    )
    lines += [
        line(
            "max concurrent streams held", [_waves_cells(results[n]["streams"])[0] for n in names]
        ),
        line("  first failing wave", [_waves_cells(results[n]["streams"])[1] for n in names]),
        line("non-2xx / failed, all phases", [_non_2xx(results[n]) for n in names]),
        line("requests → upstream calls", [_calls(results[n]) for n in names]),
    ]
    return "\n".join(lines)


# --- running --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="LiteLLM proxy vs our /v1/chat/completions over HTTP (issue #4)."
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls, shorter steps")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help="comma-separated subset of litellm,aisaas"
    )
    parser.add_argument(
        "--delays", default="0,50", help="upstream latencies in ms, comma-separated"
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="our server's LOG_LEVEL (LiteLLM runs with LITELLM_LOG=ERROR)",
    )
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets or any(t not in TARGETS for t in targets):
        parser.error(f"--targets takes a subset of {','.join(TARGETS)}")
    delays = [float(d) for d in args.delays.split(",")]
    plan = QUICK if args.quick else FULL

    began = time.monotonic()
    started = common.machine()
    versions: dict[str, Any] = {
        "aisaas": _git(),
        "daphne": version("daphne"),
        "twisted": version("twisted"),
        "django": version("django"),
        "openai": version("openai"),
    }
    python = None
    if "litellm" in targets:
        python = ensure_litellm_venv()
        versions["litellm"] = litellm_versions(python)
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    server_info: dict[str, Any] = {}
    with make_workdir() as workdir, start_upstream() as up:
        rig = measure_rig(Session(up, plan, None, []))
        for name in targets:
            up.configure(delay_ms=0)  # the smoke call at start-up expects the default reply
            try:
                if name == "litellm":
                    assert python is not None
                    say("starting LiteLLM")
                    with litellm_proxy(python, up.port, workdir) as server:
                        session = Session(up, plan, server, [server.process.pid])
                        results[name] = measure_server(session, delays)
                        server_info[name] = server.info
                else:
                    say("starting our server (private PostgreSQL and Redis, daphne)")
                    with aisaas_server(up.port, workdir, log_level=args.log_level) as server:
                        roots = [server.process.pid, *server.info["service_pids"]]
                        session = Session(up, plan, server, roots)
                        results[name] = measure_server(session, delays)
                        server_info[name] = server.info
            except RuntimeError as exc:
                errors[name] = " ".join(str(exc).split())[:300] or type(exc).__name__
                say(f"{name} not measured:\n{exc}")
    report = {
        "benchmark": "http_gateway",
        "command": common.command("benchmarks.http_gateway"),
        "date": common.now(),
        "seconds": time.monotonic() - began,
        "machine": started,
        "load_average_end": common.load_average(),
        "versions": versions,
        "targets": targets,
        "delays": delays,
        "plan": plan.__dict__,
        "limits": {"p99_ms": P99_LIMIT_MS, "stall_gap_ms": GAP_LIMIT_MS, "slow_upstream": SLOW},
        "servers": server_info,
        "rig": rig,
        "results": results,
        "errors": errors,
    }
    sys.stdout.write((json.dumps(report, indent=2) if args.json else render(report)) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
