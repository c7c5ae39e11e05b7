"""The call-record queue is a leased outbox: a flush worker killed with SIGKILL before or after
its commit loses no record and stores none twice (it used to pop a batch before storing it, so
a worker killed mid-batch lost the batch)."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from typing import cast

import pytest
from django.conf import settings
from django.db import connection

from apps.traces.models import LlmCallLog
from apps.traces.services import PROCESSING_KEY, QUEUE_KEY, call_records_flush
from apps.workspaces.models import User, Workspace
from apps.workspaces.services import workspace_create
from tests.asgi_server import database_url, run_committed
from tests.gateway_support import forget_redis_keys, redis_client
from tests.traces import workers
from tests.traces.rollup_support import CallRecordFactory, queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace(owner: User) -> Iterator[Workspace]:
    """A workspace of its own, committed (the child process stores into it), dropped after."""
    slug = f"outbox-{uuid.uuid4().hex[:8]}"
    made = run_committed(lambda: workspace_create(name=slug, slug=slug, owner=owner))
    yield made
    run_committed(lambda: LlmCallLog.objects.filter(workspace_id=made.pk).delete())
    run_committed(lambda: Workspace.objects.filter(pk=made.pk).delete())
    forget_redis_keys(f"{made.schema_name}:*")


@pytest.fixture
def own_queue() -> Iterator[None]:
    """The record queue emptied for this test, and given back to other tests afterwards."""
    client = redis_client()
    token = uuid.uuid4().hex[:8]
    saved = {key: f"{key}:saved:{token}" for key in (QUEUE_KEY, PROCESSING_KEY)}
    for key, aside in saved.items():
        if client.exists(key):
            client.rename(key, aside)
    yield
    for key, aside in saved.items():
        client.delete(key)
        if client.exists(aside):
            client.rename(aside, key)


@pytest.mark.parametrize("where", ["before_commit", "before_ack"])
def test_a_flush_killed_mid_batch_loses_nothing_and_stores_nothing_twice(
    workspace: Workspace, own_queue: None, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # given three queued calls
    records = CallRecordFactory.build_batch(
        3, workspace_id=workspace.pk, schema=workspace.schema_name, status="ok"
    )
    queue(records)
    ids = [uuid.UUID(r.call_id) for r in records]

    def stored() -> int:
        return LlmCallLog.objects.filter(call_id__in=ids).count()

    # when a flush worker is killed at `where`
    monkeypatch.setenv("DATABASE_URL", database_url(connection.settings_dict))
    monkeypatch.setenv("REDIS_URL", settings.REDIS_URL)
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "aisaas.settings.test")
    child = multiprocessing.get_context("spawn").Process(
        target=workers.flush_then_die, args=(where,)
    )
    child.start()
    child.join(120)
    assert child.exitcode == -9

    # then the batch is still held, not lost
    assert run_committed(stored) == (3 if where == "before_ack" else 0)
    client = redis_client()
    assert (client.llen(QUEUE_KEY), client.zcard(PROCESSING_KEY)) == (0, 3)

    # and once the dead worker's lease ends (its deadline moved to the past), the next flush
    # stores each call exactly once
    held = cast(list[bytes], client.zrange(PROCESSING_KEY, 0, -1))
    client.zadd(PROCESSING_KEY, dict.fromkeys(held, 0))
    added = run_committed(call_records_flush)
    assert added == (0 if where == "before_ack" else 3)
    assert run_committed(stored) == 3
    assert client.zcard(PROCESSING_KEY) == 0
