"""The gateway's janitors: beat runs them; here they are called directly, as a worker would."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from aisaas.celery import app
from apps.llm.core.budget import BudgetStore, Scope
from apps.llm.tasks import release_expired_reservations
from apps.traces.tasks import flush_call_records
from tests.gateway_support import forget_redis_keys, redis_client


def test_both_janitors_are_on_beats_schedule() -> None:
    # given beat's schedule
    schedule: dict[str, dict[str, Any]] = settings.CELERY_BEAT_SCHEDULE
    every = {entry["task"]: entry["schedule"] for entry in schedule.values()}

    # then the call-record flush runs every few seconds and the reservation janitor every minute
    assert every[flush_call_records.name] <= 5
    assert every[release_expired_reservations.name] <= 60
    # and the names are the registered tasks
    assert {flush_call_records.name, release_expired_reservations.name} <= set(app.tasks)


@pytest.mark.django_db
def test_the_janitor_task_releases_a_dead_callers_reservation() -> None:
    # given a reservation in the glue's store whose caller died: its TTL is already over
    token = uuid.uuid4().hex[:12]
    scope = Scope(
        name="workspace_day_tokens", key=f"janitor_{token}:budget:tokens", limit=1000, amount=400
    )

    async def reserve_and_die() -> None:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            await BudgetStore(client).reserve([scope], ttl=-1)
        finally:
            await client.aclose()

    asyncio.run(reserve_and_die())
    assert redis_client().hget(scope.key, "reserved") == b"400"

    try:
        # when beat's task runs
        released = release_expired_reservations()

        # then the budget is given back
        assert released >= 1
        assert redis_client().hget(scope.key, "reserved") == b"0"
    finally:
        forget_redis_keys(f"janitor_{token}:*")
