"""Billing test setup: `workspace` (acme as a new free workspace: its month of credit, its Redis
namespace empty), throwaway workspaces for what needs a ledger of its own (in the test's
transaction, or committed for tests that use other threads and processes), and the call-debit
queue set aside while a test drains it, so no test posts another test's calls.

Redis outlives each test's transaction: acme's and globex's keys (`fresh_redis`) and the credit
hash of every throwaway workspace are deleted at teardown, so a rolled-back balance never
lingers there.

Stripe: one loopback Stripe fake per session (`stripe_fake` points this process's settings at
it), and `billing_site`, daphne serving the app, where the fake delivers its signed webhooks.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connection, transaction

from aisaas.devstack.stripe_fake import StripeFakeServer
from apps.billing.debit_queue import DEAD_LETTER_KEY, PROCESSING_KEY, QUEUE_KEY
from apps.billing.ledger import balance_get
from apps.billing.plans import plan_get
from apps.workspaces.models import User, Workspace
from apps.workspaces.services import workspace_create
from tests.asgi_server import AsgiServer, daphne, database_url, run_committed
from tests.billing.stripe_support import STRIPE_KEY, WEBHOOK_PATH, WEBHOOK_SECRET
from tests.factories import LedgerEntryFactory, UserFactory

MakeWorkspace = Callable[..., Workspace]


@pytest.fixture
def rds() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


def _purge(client: redis.Redis, schemas: list[str]) -> None:
    for schema in schemas:
        keys = list(client.scan_iter(match=f"{schema}:*", count=1000))
        if keys:
            client.delete(*keys)


def balance_set(workspace: Workspace, micros: int) -> None:
    """Bring the workspace's balance to `micros` with one adjustment entry."""
    LedgerEntryFactory.create(
        workspace=workspace,
        delta_micros=micros - balance_get(workspace_id=workspace.pk).balance_micros,
        idempotency_key=f"set-balance:{uuid.uuid4().hex}",
    )


def _new(plan: str, owner: User | None) -> Workspace:
    slug = f"bill-{uuid.uuid4().hex[:10]}"
    owner = owner or UserFactory.create(email=f"owner-{slug}@example.test")
    return workspace_create(name=f"Billing {slug}", slug=slug, owner=owner, plan=plan)


def like_new(workspace: Workspace, *, plan: str = "free") -> Workspace:
    """`workspace` on `plan`, its balance that plan's monthly credit, as a new workspace starts
    (in the test's transaction: rolled back with it)."""
    if workspace.plan != plan:
        workspace.plan = plan
        workspace.save(update_fields=["plan"])
    balance_set(workspace, plan_get(code=plan).monthly_credit_micros)
    return workspace


@pytest.fixture
def workspace(acme: Workspace, fresh_redis: redis.Redis) -> Workspace:
    """acme as a new free workspace would be — its balance the free plan's monthly credit, its
    Redis namespace empty (`fresh_redis`) — in the test's transaction. Creating a workspace
    migrates a schema: only the tests of creation itself use `make_workspace`."""
    return like_new(acme)


@pytest.fixture
def other_workspace(globex: Workspace, fresh_redis: redis.Redis) -> Workspace:
    """globex, like `workspace`: a second workspace, for what must stay in its own."""
    return like_new(globex)


@pytest.fixture
def make_workspace(db: None, rds: redis.Redis) -> Iterator[MakeWorkspace]:
    """A new workspace in the test's transaction (it starts with its plan's monthly grant)."""
    made: list[str] = []

    def make(*, plan: str = "free", owner: User | None = None) -> Workspace:
        workspace = _new(plan, owner)
        made.append(workspace.schema_name)
        return workspace

    yield make
    _purge(rds, made)


@pytest.fixture
def make_committed_workspace(db: None, rds: redis.Redis) -> Iterator[MakeWorkspace]:
    """A new workspace committed at once (other threads and processes see it), dropped after.

    A page the test renders in its own transaction takes locks in the workspace's schema (a
    context processor's read) that last until that transaction ends — after this teardown —
    and DROP SCHEMA would wait for them forever. So the test's work runs above a savepoint,
    rolled back (releasing those locks) before the drop; it would be rolled back anyway."""
    try:
        savepoint: str | None = transaction.savepoint()
    except SynchronousOnlyOperation:  # a browser test: its pages render in daphne, not here
        savepoint = None
    made: list[Workspace] = []

    def make(*, plan: str = "free") -> Workspace:
        workspace = run_committed(lambda: _new(plan, None))
        made.append(workspace)
        return workspace

    yield make
    if savepoint is not None:
        transaction.savepoint_rollback(savepoint)
    _purge(rds, [w.schema_name for w in made])
    run_committed(lambda: Workspace.objects.filter(pk__in=[w.pk for w in made]).delete())


@pytest.fixture
def debit_queue(rds: redis.Redis) -> Iterator[redis.Redis]:
    """The call-debit queues, emptied for this test and given back to other tests afterwards."""
    token = uuid.uuid4().hex[:8]
    saved = {key: f"{key}:saved:{token}" for key in (QUEUE_KEY, PROCESSING_KEY, DEAD_LETTER_KEY)}
    for key, aside in saved.items():
        if rds.exists(key):
            rds.rename(key, aside)
    yield rds
    for key, aside in saved.items():
        rds.delete(key)
        if rds.exists(aside):
            rds.rename(aside, key)


@pytest.fixture
def child_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What a spawned process needs to reach this session's test database and Redis."""
    env = {
        "DJANGO_SETTINGS_MODULE": "aisaas.settings.test",
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **env}


# --- Stripe: the loopback fake (aisaas.devstack.stripe_fake) and the app serving webhooks ----


@pytest.fixture(scope="session")
def stripe_fake_server() -> Iterator[StripeFakeServer]:
    with StripeFakeServer(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as server:
        yield server


@pytest.fixture
def stripe_fake(stripe_fake_server: StripeFakeServer, settings: Any) -> StripeFakeServer:
    """The session's Stripe fake, with this process's Stripe settings pointing at it."""
    settings.STRIPE_SECRET_KEY = STRIPE_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = stripe_fake_server.url
    return stripe_fake_server


@pytest.fixture(scope="session")
def billing_site(
    django_db_setup: None,
    stripe_fake_server: StripeFakeServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AsgiServer]:
    """daphne serving the app with the fake's secrets; the fake sends its webhooks there."""
    env = {
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": stripe_fake_server.url,
    }
    with daphne(log=tmp_path_factory.mktemp("daphne-billing") / "daphne.log", env=env) as server:
        stripe_fake_server.fake.webhook_url = server.url(WEBHOOK_PATH)
        try:
            yield server
        finally:
            stripe_fake_server.fake.webhook_url = ""
