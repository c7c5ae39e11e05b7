"""`python -m benchmarks.agent_loop`: what the agent loop itself costs per step.

One turn = "list_tasks please" to an agent allowed `list_tasks`, on the offline model (answering
at once): step 1 the model calls the tool, step 2 it answers from the result. The loop's own
time is the turn's wall time minus the time inside the gateway's stream (model + gateway) and
inside `tool_call` (the tool + its audit row), both measured by wrapping the two names the
loop calls; divided by the steps. That is what the loop adds: building each step's request and
tool schemas, the hop to a database thread for the tool, fencing the result. A private
PostgreSQL and Redis are started and migrated for the run (as benchmarks/mcp_roundtrip.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from . import common
from .chat_streams.rig import migrated_services


def say(line: str) -> None:
    sys.stderr.write(f"[agent_loop] {line}\n")
    sys.stderr.flush()


def _seed() -> Any:
    import django

    django.setup()
    from django_tenants.utils import schema_context

    from apps.agents.models import Agent
    from apps.agents.tools.registry import ToolContext
    from apps.workspaces.models import User
    from apps.workspaces.selectors import membership_get
    from apps.workspaces.services import workspace_create

    user = User.objects.create_user("bench@acme.test", None)
    workspace = workspace_create(name="Acme Inc.", slug="acme", owner=user)
    with schema_context(workspace.schema_name):
        agent = Agent.objects.create(name="Lister", slug="lister", tools=["list_tasks"])
    membership = membership_get(workspace=workspace, user=user)
    assert membership is not None
    return ToolContext(
        workspace=workspace, agent=agent, user=user, membership=membership, run_key="bench"
    )


async def _turns(ctx: Any, turns: int, warmup: int) -> dict[str, list[float]]:
    from apps.agents import loop
    from apps.agents.tools.registry import tools_for
    from apps.llm.services import Actor, ChatRequest, Message, call_scope_for

    spent = {"model": 0.0, "tool": 0.0}
    stream, call = loop.llm_stream, loop.tool_call

    async def timed_stream(**kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            async for event in stream(**kwargs):
                spent["model"] += time.perf_counter() - started
                yield event
                started = time.perf_counter()
        finally:
            spent["model"] += time.perf_counter() - started

    def timed_call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            spent["tool"] += time.perf_counter() - started

    loop.llm_stream, loop.tool_call = timed_stream, timed_call
    scope = await asyncio.to_thread(
        lambda: call_scope_for(
            workspace=ctx.workspace, actor=Actor("user", str(ctx.user.pk)), feature="agent"
        )
    )
    tools = tools_for(["list_tasks"])
    result: dict[str, list[float]] = {"loop_per_step": [], "turn": [], "model": [], "tool": []}
    for i in range(warmup + turns):
        spent["model"] = spent["tool"] = 0.0
        request = ChatRequest(
            alias="fast",
            messages=(Message("system", "You help."), Message("user", f"list_tasks please {i}")),
            cache=False,
        )
        steps = 0
        started = time.perf_counter()
        async for event in loop.agent_loop(
            scope=scope, request=request, ctx=ctx, tools=tools, max_steps=4
        ):
            if getattr(event, "type", "") == "done":
                steps += 1
        wall = time.perf_counter() - started
        if i >= warmup:
            own = wall - spent["model"] - spent["tool"]
            result["loop_per_step"].append(own * 1000 / steps)
            result["turn"].append(wall * 1000)
            result["model"].append(spent["model"] * 1000)
            result["tool"].append(spent["tool"] * 1000)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=200, help="measured turns (2 steps each)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()

    with migrated_services("aisaas-bench-loop-", say=say, LLM_LOCAL_TOKENS_PER_SECOND="0"):
        say("seed")
        ctx = _seed()
        say(f"{args.warmup} + {args.turns} turns")
        timings = asyncio.run(_turns(ctx, args.turns, args.warmup))

    report = {
        "command": common.command("benchmarks.agent_loop"),
        "date": common.now(),
        "machine": common.machine(),
        "turns": args.turns,
        **{f"{name}_ms": common.summary(values) for name, values in timings.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    m = report["machine"]
    print(f"{report['command']}   {report['date']}")
    print(f"{m['cores']} cores, {m['cpu']}, Python {m['python']}, load {m['load_average']}")
    print(f"{args.turns} turns of 2 steps (tool call, answer), offline model, milliseconds:")
    print(common.header("part"))
    print(common.row("loop's own time per step", report["loop_per_step_ms"]))
    print(common.row("whole turn", report["turn_ms"]))
    print(common.row("in the gateway stream, per turn", report["model_ms"]))
    print(common.row("in tool_call, per turn", report["tool_ms"]))


if __name__ == "__main__":
    main()
