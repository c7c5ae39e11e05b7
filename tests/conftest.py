"""Session-wide test setup.

Real services: the test profile's embedded PostgreSQL and Redis (own ports and data dirs, so
`make test` runs while `make run` is up), started before Django connects and stopped at the end
if this session started them. Two workspaces, `acme` and `globex`, are created once per session
with named actors: `owner` and `member` of acme, and `outsider` (a member of globex only).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psutil
import psycopg
import pytest
import redis
from django.db import connection
from django.test import Client

from aisaas import devstack
from apps.common.tenancy import use_public_schema
from apps.workspaces.models import Membership, Role, User, Workspace
from apps.workspaces.services import SYSTEM_OWNER_EMAIL, workspace_create
from tests.factories import UserFactory
from tests.gateway_support import cleared_redis_namespace, forget_redis_keys

_started: list[devstack.Service] = []
_TEST_DATABASE = re.compile(r"test_aisaas_(\d+)(?:_gw\d+)?")


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    _started.extend(devstack.ensure_running(settings.EMBEDDED_SERVICES))
    _drop_stale_test_databases(settings.DATABASES["default"])
    _forget_the_last_sessions_redis(settings)


def _forget_the_last_sessions_redis(settings: Any) -> None:
    """Empty the embedded test Redis unless another pytest session is using it.

    It outlives the test database, and its keys are named by schema (`acme:credits`, budget
    counters): a credit hash kept from an earlier session records a later ledger position than
    this session's fresh ledger, so the gateway would trust its old balance. A Redis configured
    by REDIS_URL is never emptied.

    Under pytest-xdist the controller empties it, every logical database included (each worker
    has its own, see aisaas/settings/test.py), before it starts the workers; a worker empties
    nothing, as its sibling may already be running tests."""
    embedded = any(isinstance(s, devstack.EmbeddedRedis) for s in settings.EMBEDDED_SERVICES)
    if os.environ.get("PYTEST_XDIST_WORKER") or not embedded:
        return
    if not _live_test_databases(settings.DATABASES["default"]):
        client = redis.Redis.from_url(settings.REDIS_URL)
        client.flushall()
        client.close()


def _test_databases(db: dict[str, Any]) -> dict[str, bool]:
    """test_aisaas_<pid> databases on the test server → whether their pytest process lives."""
    conninfo = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "dbname": "postgres"}
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'test_aisaas_%'")
        names = [name for (name,) in rows.fetchall()]
    found = {}
    for name in names:
        # test_aisaas_<pid>, or test_aisaas_<pid>_gw<n> for a pytest-xdist worker
        matched = _TEST_DATABASE.fullmatch(name)
        if matched:
            pid = int(matched[1])
            found[name] = pid != os.getpid() and psutil.pid_exists(pid)
    return found


def _live_test_databases(db: dict[str, Any]) -> list[str]:
    return [name for name, alive in _test_databases(db).items() if alive]


def _drop_stale_test_databases(db: dict[str, Any]) -> None:
    """Drop test databases whose pytest process died before cleaning up."""
    conninfo = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "dbname": "postgres"}
    stale = [name for name, alive in _test_databases(db).items() if not alive]
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        for name in stale:
            if name != db["TEST"]["NAME"]:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the servers this session started, unless another pytest session still uses them."""
    from django.conf import settings

    if _started and not _live_test_databases(settings.DATABASES["default"]):
        devstack.stop(_started)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """After pytest-django created and migrated the test database, add the two workspaces.

    At the end, before pytest-django drops the database, the connections that threads of this
    process left open to it (async tests' sync_to_async threads, thread pools) are closed by the
    server, or the drop fails ("being accessed by other users") and the database is left for the
    next session's sweep. Every server process the tests started has stopped by then."""
    assert connection.settings_dict["NAME"].startswith("test_"), "never seed a real database"
    with django_db_blocker.unblock():
        owner = UserFactory.create(email="owner@acme.test")
        member = UserFactory.create(email="member@acme.test")
        globex_owner = UserFactory.create(email="owner@globex.test")
        outsider = UserFactory.create(email="outsider@globex.test")
        acme = workspace_create(name="Acme", slug="acme", owner=owner)
        globex = workspace_create(name="Globex", slug="globex", owner=globex_owner)
        Membership.objects.create(workspace=acme, user=member, role=Role.MEMBER)
        Membership.objects.create(workspace=globex, user=outsider, role=Role.MEMBER)
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _public_schema_each_test() -> Iterator[None]:
    """A request leaves the connection in its workspace schema; each test starts in public."""
    use_public_schema()
    yield
    use_public_schema()


SESSION_SCHEMAS = ("acme", "globex")


@pytest.fixture
def fresh_redis() -> Iterator[redis.Redis]:
    """A clean Redis namespace for the session workspaces: every key of `acme` and `globex` is
    deleted before and after the test, so its counters, credit hash and cache start empty as in
    a new workspace — without migrating a new schema. Only those keys: other processes' and the
    platform's keys stay (never FLUSHDB). Yields a client on this process's Redis."""
    with cleared_redis_namespace(*SESSION_SCHEMAS) as client:
        yield client


@contextmanager
def committed_system_workspace(
    django_db_blocker: Any, create: Callable[[], Workspace]
) -> Iterator[Workspace]:
    """The system workspace `create` makes (evals, replays), made once for a group of tests:
    committed outside any test's transaction, then deleted with its schema and its Redis keys —
    and the system owner with it when this made that user. Tests give it a clean Redis namespace
    each (`cleared_redis_namespace`) where they used to get a new workspace."""

    with django_db_blocker.unblock():
        owner_existed = User.objects.filter(email=SYSTEM_OWNER_EMAIL).exists()
        workspace = create()
    try:
        yield workspace
    finally:
        forget_redis_keys(f"{workspace.schema_name}:*")
        with django_db_blocker.unblock():
            Workspace.objects.get(pk=workspace.pk).delete()  # its schema too (auto_drop_schema)
            if not owner_existed:
                User.objects.filter(email=SYSTEM_OWNER_EMAIL).delete()


@pytest.fixture
def acme(db: None) -> Workspace:
    return Workspace.objects.get(slug="acme")


@pytest.fixture
def globex(db: None) -> Workspace:
    return Workspace.objects.get(slug="globex")


@pytest.fixture
def owner(db: None) -> User:
    return User.objects.get(email="owner@acme.test")


@pytest.fixture
def member(db: None) -> User:
    return User.objects.get(email="member@acme.test")


@pytest.fixture
def outsider(db: None) -> User:
    """A member of globex, not of acme."""
    return User.objects.get(email="outsider@globex.test")


def host_client(host: str, user: User | None = None) -> Client:
    client = Client(HTTP_HOST=host)
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def public_client() -> Client:
    return host_client("localhost")


@pytest.fixture
def acme_client() -> Client:
    """Anonymous client on acme.localhost."""
    return host_client("acme.localhost")
