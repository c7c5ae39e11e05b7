"""`python -m benchmarks.mcp_roundtrip`: what MCP adds to a tool call.

The same tool (`current_time`, read only, one audit row per call) called two ways, one call at a
time: through the official MCP client over Streamable HTTP against daphne serving
`aisaas.asgi:application` (`<slug>.localhost/mcp`: key check, rate-limit count, caller, the
tool, JSON-RPC both ways), and in this process with `tool_call` (the runner alone). A private
PostgreSQL and Redis are started and migrated for the run; progress goes to stderr, the table
(or `--json`) to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from . import common
from .chat_streams.rig import ROOT, migrated_services

SLUG = "acme"
AGENT = "clock"
TOOL = "current_time"


def say(line: str) -> None:
    sys.stderr.write(f"[mcp_roundtrip] {line}\n")
    sys.stderr.flush()


def _seed() -> tuple[str, Any]:
    """A workspace with an agent allowed the tool and a `tools` key of its owner; returns the
    key's secret and the in-process ToolContext."""
    import django

    django.setup()
    from django_tenants.utils import schema_context

    from apps.agents.models import Agent
    from apps.agents.tools.registry import ToolContext
    from apps.workspaces.api_keys import api_key_create
    from apps.workspaces.models import User
    from apps.workspaces.selectors import membership_get
    from apps.workspaces.services import workspace_create

    user = User.objects.create_user("bench@acme.test", None)
    workspace = workspace_create(name="Acme Inc.", slug=SLUG, owner=user)
    with schema_context(workspace.schema_name):
        agent = Agent.objects.create(name="Clock", slug=AGENT, tools=[TOOL])
    _, secret = api_key_create(
        workspace=workspace,
        name="bench",
        created_by=user,
        scopes=["tools"],
        rate_limit_per_minute=100_000,
    )
    membership = membership_get(workspace=workspace, user=user)
    assert membership is not None
    ctx = ToolContext(
        workspace=workspace, agent=agent, user=user, membership=membership, run_key="bench"
    )
    return secret, ctx


@contextmanager
def _daphne(port: int, env: dict[str, str], log: Path) -> Iterator[None]:
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - argv built here
            [*argv, "aisaas.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield
    finally:
        common.stop_process_group(process)


async def _mcp_timings(port: int, secret: str, calls: int, warmup: int) -> dict[str, list[float]]:
    import httpx2 as httpx
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {
        "host": f"{SLUG}.localhost:{port}",
        "authorization": f"Bearer {secret}",
        "x-agent": AGENT,
    }
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 60
    while True:  # until daphne answers
        try:
            async with httpx.AsyncClient(trust_env=False) as probe:
                await probe.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    http = httpx.AsyncClient(headers=headers, timeout=30, trust_env=False)
    timings: dict[str, list[float]] = {"client": [], "bare": []}
    async with Client(streamable_http_client(url, http_client=http)) as client:
        for i in range(warmup + calls):
            started = time.perf_counter()
            result = await client.call_tool(TOOL, {})
            elapsed = (time.perf_counter() - started) * 1000
            if result.is_error:
                raise RuntimeError(f"the MCP call failed: {result.content}")
            if i >= warmup:
                timings["client"].append(elapsed)
    # The same request as one POST of a bare HTTP client: the server's share of the round trip.
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}
    body["params"] = {"name": TOOL, "arguments": {}}
    bare_headers = {"accept": "application/json, text/event-stream"}
    bare_headers["mcp-protocol-version"] = "2025-11-25"
    async with httpx.AsyncClient(headers=headers, timeout=30, trust_env=False) as bare:
        for i in range(warmup + calls):
            started = time.perf_counter()
            response = await bare.post(url, json=body, headers=bare_headers)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200 or response.json()["result"]["isError"]:
                raise RuntimeError(f"the bare call failed: {response.text}")
            if i >= warmup:
                timings["bare"].append(elapsed)
        # Refused after the key check and the caller lookup (an unknown agent): the edge's share.
        refused_headers = {**bare_headers, "x-agent": "nobody"}
        timings["edge"] = []
        for i in range(warmup + calls):
            started = time.perf_counter()
            response = await bare.post(url, json=body, headers=refused_headers)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 404:
                raise RuntimeError(f"the refused call was not refused: {response.text}")
            if i >= warmup:
                timings["edge"].append(elapsed)
    return timings


def _in_process_timings(ctx: Any, calls: int, warmup: int) -> list[float]:
    from django_tenants.utils import schema_context

    from apps.agents.tools.runner import tool_call

    timings = []
    with schema_context(ctx.workspace.schema_name):
        for i in range(warmup + calls):
            started = time.perf_counter()
            outcome = tool_call(ctx, TOOL, {}, step=i)
            elapsed = (time.perf_counter() - started) * 1000
            if not outcome.ok:
                raise RuntimeError(f"the call failed: {outcome.summary}")
            if i >= warmup:
                timings.append(elapsed)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=200, help="measured calls per way")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured calls per way first")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()

    with migrated_services("aisaas-bench-mcp-", say=say) as rig:
        say("seed")
        secret, ctx = _seed()
        port = rig.port
        with _daphne(port, rig.env, rig.workdir / "daphne.log"):
            say(f"MCP: {args.warmup} + {args.calls} calls on daphne :{port}")
            mcp = asyncio.run(_mcp_timings(port, secret, args.calls, args.warmup))
        say(f"in process: {args.warmup} + {args.calls} calls")
        local = _in_process_timings(ctx, args.calls, args.warmup)

    report = {
        "command": common.command("benchmarks.mcp_roundtrip"),
        "date": common.now(),
        "machine": common.machine(),
        "versions": {"mcp": version("mcp"), "daphne": version("daphne")},
        "calls": args.calls,
        "mcp_ms": common.summary(mcp["client"]),
        "bare_http_ms": common.summary(mcp["bare"]),
        "edge_only_ms": common.summary(mcp["edge"]),
        "in_process_ms": common.summary(local),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    m = report["machine"]
    print(f"{report['command']}   {report['date']}")
    print(f"{m['cores']} cores, {m['cpu']}, Python {m['python']}, load {m['load_average']}")
    print(f"mcp {report['versions']['mcp']}, daphne {report['versions']['daphne']}")
    print(f"{args.calls} calls of {TOOL} each, one at a time, milliseconds:")
    print(common.header("way"))
    print(common.row("MCP tools/call over HTTP (round trip)", report["mcp_ms"]))
    print(common.row("the same POST, bare HTTP client", report["bare_http_ms"]))
    print(common.row("refused after key + caller (no MCP)", report["edge_only_ms"]))
    print(common.row("tool_call in process", report["in_process_ms"]))


if __name__ == "__main__":
    main()
