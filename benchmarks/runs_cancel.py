"""`python -m benchmarks.runs_cancel`: how fast a long run stops when cancelled (F14).

Each run asks the Task helper to create ten tasks on the offline model, paced like a provider
(30 tokens/s, so a model stream is usually in flight). Once the run has stored its first step,
cancel is requested (the same service the page and the API call) and the clock runs until the
worker's `run_execute` returns with the run cancelled; the steps it stored after the request
are counted too (goal: ≤ 1 step and ≤ 2 s). The worker is `run_execute` itself, in this
process; a private PostgreSQL and Redis are started and migrated for the run.
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
    sys.stderr.write(f"[runs_cancel] {line}\n")
    sys.stderr.flush()


def _seed() -> tuple[Any, Any, Any]:
    import django

    django.setup()
    from django_tenants.utils import schema_context

    from apps.agents.models import Agent
    from apps.workspaces.models import User
    from apps.workspaces.selectors import membership_get
    from apps.workspaces.services import workspace_create

    user = User.objects.create_user("bench@acme.test", None)
    workspace = workspace_create(name="Acme Inc.", slug="acme", owner=user)
    with schema_context(workspace.schema_name):
        agent = Agent.objects.create(
            name="Task helper", slug="task-helper", tools=["create_task"], max_steps=20
        )
    return workspace, membership_get(workspace=workspace, user=user), agent


async def _one(workspace: Any, membership: Any, agent: Any) -> tuple[float, int]:
    from asgiref.sync import sync_to_async
    from django_tenants.utils import schema_context

    from apps.agents.models import AgentRun
    from apps.agents.runs.executor import run_execute
    from apps.agents.runs.services import run_cancel, run_start

    def start() -> Any:
        with schema_context(workspace.schema_name):
            return run_start(
                workspace=workspace, membership=membership, agent=agent,
                task="Please create_task for ten tasks about the kiln",
            )  # fmt: skip

    def step_of(run_id: int) -> int:
        with schema_context(workspace.schema_name):
            return AgentRun.objects.get(pk=run_id).step

    def cancel(run: Any) -> None:
        with schema_context(workspace.schema_name):
            run_cancel(membership=membership, run=run)

    db = sync_to_async(lambda f, *a: f(*a), thread_sensitive=False)
    run = await db(start)
    worker = asyncio.ensure_future(run_execute(workspace=workspace, run_id=run.pk, owner="bench"))
    while await db(step_of, run.pk) < 1:
        await asyncio.sleep(0.02)
    asked_at_step = await db(step_of, run.pk)
    asked = time.perf_counter()
    await db(cancel, run)
    ended = await worker
    latency = time.perf_counter() - asked
    assert ended == "cancelled", ended
    return latency, await db(step_of, run.pk) - asked_at_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()

    with migrated_services("aisaas-bench-cancel-", say=say, LLM_LOCAL_TOKENS_PER_SECOND="30"):
        say("seed")
        workspace, membership, agent = _seed()
        latencies, extra_steps = [], []
        for i in range(args.runs):
            latency, steps = asyncio.run(_one(workspace, membership, agent))
            latencies.append(latency * 1000)
            extra_steps.append(steps)
            say(f"run {i + 1}: {latency * 1000:.0f} ms, {steps} step(s) after the request")

    report = {
        "command": common.command("benchmarks.runs_cancel"),
        "date": common.now(),
        "machine": common.machine(),
        "runs": args.runs,
        "cancel_latency_ms": common.summary(latencies),
        "steps_after_request_max": max(extra_steps),
        "steps_after_request": {str(n): extra_steps.count(n) for n in sorted(set(extra_steps))},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    m = report["machine"]
    print(f"{report['command']}   {report['date']}")
    print(f"{m['cores']} cores, {m['cpu']}, Python {m['python']}, load {m['load_average']}")
    print(f"{args.runs} runs cancelled after their first step, offline model at 30 tokens/s:")
    print(common.header("milliseconds"))
    print(common.row("cancel request → run stopped", report["cancel_latency_ms"]))
    print(
        f"steps stored after the request: {report['steps_after_request']} (max {report['steps_after_request_max']})"
    )


if __name__ == "__main__":
    main()
