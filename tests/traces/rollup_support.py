"""Synthetic call records for the rollup and dashboard tests: queued like the gateway queues
them, so `call_records_flush` stores (and rolls up) them through the production path."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import factory

from apps.llm.core.context import CallRecord
from apps.traces.services import QUEUE_KEY, _encode
from tests.gateway_support import redis_client

FEATURES = ("chat", "rag.answer", "agents.run", "summarise")
MODELS = (
    ("smart", "anthropic", "claude-sonnet-4-5"),
    ("fast", "openai", "gpt-4.1-mini"),
    ("fast", "local", "local-echo"),
    ("reasoning", "openai", "o4-mini"),
)
STATUSES = ("ok", "ok", "ok", "ok", "ok", "ok", "error", "cancelled", "truncated")
DAY = 86_400.0
_rng = random.Random(8)


def _route(record: Any) -> tuple[str, str, str]:
    return _rng.choice(MODELS)


class CallRecordFactory(factory.Factory[CallRecord]):
    """A finished call somewhere in the last three days, with a realistic spread of outcomes."""

    class Meta:
        model = CallRecord

    class Params:
        route = factory.LazyAttribute(_route)

    call_id = factory.LazyFunction(lambda: uuid.uuid4().hex)
    request_id = factory.LazyFunction(lambda: uuid.uuid4().hex)
    trace_id = factory.LazyFunction(lambda: uuid.uuid4().hex)
    schema = "acme"
    workspace_id = 0
    actor_type = "user"
    actor_id = "1"
    feature = factory.LazyFunction(lambda: _rng.choice(FEATURES))
    alias = factory.LazyAttribute(lambda o: o.route[0])
    provider = factory.LazyAttribute(lambda o: o.route[1])
    model = factory.LazyAttribute(lambda o: o.route[2])
    status = factory.LazyFunction(lambda: _rng.choice(STATUSES))
    input_tokens = factory.LazyFunction(lambda: _rng.randint(0, 4000))
    output_tokens = factory.LazyFunction(lambda: _rng.randint(0, 1500))
    cache_read_tokens = factory.LazyFunction(lambda: _rng.choice((0, 0, 512)))
    cache_write_tokens = factory.LazyFunction(lambda: _rng.choice((0, 0, 0, 256)))
    cost_micros = factory.LazyFunction(lambda: _rng.randint(0, 40_000))
    cached = factory.LazyFunction(lambda: _rng.random() < 0.15)
    fallback_used = factory.LazyFunction(lambda: _rng.random() < 0.1)
    byok = False
    offline = False
    duration_ms = factory.LazyFunction(lambda: _rng.lognormvariate(6.5, 1.2))
    started_at = factory.LazyFunction(lambda: time.time() - _rng.uniform(0, 3 * DAY))
    finish_reason = "stop"
    price_version = "test"


def queue(records: list[CallRecord]) -> None:
    """Push records onto the gateway's queue, as its RedisCallSink does."""
    redis_client().rpush(QUEUE_KEY, *(_encode(r) for r in records))
