"""apps/llm/core is plain Python (STYLE §5): in a process where Django cannot be imported, every
core module imports, and the offline model answers through a whole Gateway on real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import asyncio
import importlib
import json
import os
import pkgutil
import sys
import uuid


class NoDjango:
    # A meta-path finder that refuses django and every django_* package, as if not installed.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0].startswith("django"):
            raise ImportError(f"{name} is blocked: apps.llm.core must not need it")
        return None


sys.meta_path.insert(0, NoDjango())
try:
    import django  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("the blocker does not work")

import apps.llm.core as core

modules = sorted(m.name for m in pkgutil.walk_packages(core.__path__, "apps.llm.core."))
for name in modules:
    importlib.import_module(name)

import redis.asyncio as aioredis

from apps.llm.core.budget import BudgetStore
from apps.llm.core.cache import ExactCache
from apps.llm.core.context import Actor, CallScope
from apps.llm.core.gateway import Gateway
from apps.llm.core.providers.local import LocalProvider
from apps.llm.core.routing import RoutingTable
from apps.llm.core.types import ChatRequest, DoneEvent, Message


class ListSink:
    def __init__(self):
        self.records = []

    async def record(self, record):
        self.records.append(record)


async def main():
    client = aioredis.Redis.from_url(os.environ["LLM_CORE_TEST_REDIS_URL"])
    token = uuid.uuid4().hex[:12]
    sink = ListSink()
    gateway = Gateway(
        budget=BudgetStore(client, prefix=f"testllm_{token}"), cache=ExactCache(client), sink=sink
    )
    local = {"provider": "local", "model": "local-fast"}
    scope = CallScope(
        schema=f"acme_{token}",
        workspace_id=1,
        actor=Actor("system", "core-test"),
        feature="chat",
        routing=RoutingTable.from_dict({"aliases": {"fast": {"primary": local, "offline": local}}}),
        providers={"local": LocalProvider(tokens_per_second=0)},
    )
    try:
        answer = await gateway.chat(
            scope, ChatRequest(alias="fast", messages=(Message("user", "Plan a picnic"),))
        )
        events = [
            e
            async for e in gateway.stream(
                scope, ChatRequest(alias="fast", messages=(Message("user", "Plan a party"),))
            )
        ]
        open_reservations = await gateway.budget.open_reservations()
    finally:
        keys = [key async for key in client.scan_iter(match=f"*{token}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.response is not None
    return {
        "modules": modules,
        "django_loaded": sorted(m for m in sys.modules if m.startswith("django")),
        "text": answer.text,
        "provider": answer.provider,
        "offline": answer.offline,
        "cost_micros": answer.cost_micros,
        "streamed": done.response.text,
        "statuses": [r.status for r in sink.records],
        "open_reservations": open_reservations,
    }


print(json.dumps(asyncio.run(main())))
"""


def test_the_core_imports_and_answers_with_django_unimportable() -> None:
    # given a fresh interpreter where importing Django fails, with only a Redis URL to go on
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env |= {"LLM_CORE_TEST_REDIS_URL": settings.REDIS_URL, "PYTHONPATH": str(ROOT)}
    # when it imports every module of apps.llm.core and calls the offline model
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # then
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {
        "apps.llm.core.budget",
        "apps.llm.core.cache",
        "apps.llm.core.credit_hash",
        "apps.llm.core.gateway",
        "apps.llm.core.pricing",
        "apps.llm.core.providers.anthropic",
        "apps.llm.core.providers.openai",
        "apps.llm.core.providers.local.provider",
    } <= set(report["modules"])
    assert report["django_loaded"] == []
    assert (report["provider"], report["offline"]) == ("local", True)
    assert report["text"]
    assert report["streamed"]
    assert report["cost_micros"] > 0
    assert report["statuses"] == ["ok", "ok"]
    assert report["open_reservations"] == 0
