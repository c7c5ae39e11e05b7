"""The /v1 API, tested the way clients use it: the official `openai` SDK against daphne serving
the real ASGI app (a subprocess on this session's test database and Redis), whose `openai`
provider points at a fake OpenAI server running in this process — so a test scripts the
upstream's replies and faults and sees what reached it (and when the gateway hung up).

Only the `openai` provider is configured, so every chat alias routes to it with no fallback
(`fast` → gpt-4.1-mini, `smart` → gpt-4.1) and `embed` to text-embedding-3-small.
API keys are written committed (`run_committed`): daphne cannot see the test's transaction.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import openai
import pytest
from django.db.models import Max
from django_tenants.utils import schema_context

from apps.billing.models import Outcome
from apps.rag.models import Document
from apps.traces.models import LlmCallLog
from apps.traces.services import call_records_flush
from apps.workspaces.ai import ai_settings_get
from apps.workspaces.api_keys import SECRET_PREFIX
from apps.workspaces.models import ApiKey, Workspace
from tests.asgi_server import AsgiServer, daphne, run_committed
from tests.factories import ApiKeyFactory
from tests.fakes import FakeOpenAIServer

UPSTREAM_KEY = "sk-upstream-platform-key-Q7wxyz"


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=UPSTREAM_KEY, max_lifetime=3600) as server:
        yield server


@pytest.fixture(scope="session")
def api_server(
    django_db_setup: None,
    upstream: FakeOpenAIServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AsgiServer]:
    env = {"OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": upstream.base_url}
    with daphne(log=tmp_path_factory.mktemp("daphne-api") / "daphne.log", env=env) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_upstream(upstream: FakeOpenAIServer) -> Iterator[None]:
    upstream.faults.clear()
    upstream.replies.clear()
    upstream.token_delay = 0.0
    yield
    upstream.faults.clear()
    upstream.replies.clear()
    upstream.token_delay = 0.0


@dataclass
class Key:
    row: ApiKey
    secret: str
    workspace: Workspace


MakeKey = Callable[..., Key]


@pytest.fixture
def make_key(django_db_setup: None) -> Iterator[MakeKey]:
    """`make_key("acme", scopes=…, rate_limit_per_minute=…, expires_at=…)` → a committed key
    (ApiKeyFactory: an expiry may be in the past), deleted after the test."""
    made: list[int] = []

    def make(slug: str = "acme", **options: Any) -> Key:
        def create() -> Key:
            workspace = Workspace.objects.get(slug=slug)
            secret = SECRET_PREFIX + secrets.token_urlsafe(30)
            row = ApiKeyFactory.create(workspace=workspace, secret=secret, **options)
            return Key(row=row, secret=secret, workspace=workspace)

        key = run_committed(create)
        made.append(key.row.pk)
        return key

    yield make
    run_committed(lambda: ApiKey.objects.filter(pk__in=made).delete())


@pytest.fixture
def forget_outcomes(django_db_setup: None) -> Iterator[None]:
    """Outcomes recorded through the API are committed: deleted after the test, so that no
    other test meets them (the finaliser's bills every workspace's due outcomes)."""
    last = run_committed(lambda: Outcome.objects.aggregate(last=Max("pk"))["last"] or 0)
    yield
    run_committed(lambda: Outcome.objects.filter(pk__gt=last).delete())


@pytest.fixture
def forget_documents(django_db_setup: None) -> Iterator[None]:
    """Documents added through the API are committed in acme's and globex's schemas: deleted
    after the test (with their bytes and chunks), so that no other test meets them."""

    slugs = ("acme", "globex")

    def last() -> dict[str, int]:
        found = {}
        for slug in slugs:
            with schema_context(slug):
                found[slug] = Document.objects.aggregate(last=Max("pk"))["last"] or 0
        return found

    before = run_committed(last)
    yield

    def forget() -> None:
        for slug in slugs:
            with schema_context(slug):
                Document.objects.filter(pk__gt=before[slug]).delete()

    run_committed(forget)


@pytest.fixture
def client_for(api_server: AsgiServer) -> Iterator[Callable[[Key], openai.OpenAI]]:
    clients: list[openai.OpenAI] = []

    def make(key: Key) -> openai.OpenAI:
        client = openai.OpenAI(
            api_key=key.secret, base_url=api_server.url("/v1"), max_retries=0, timeout=30
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def http(api_server: AsgiServer) -> Iterator[httpx.Client]:
    """A bare HTTP client on the API, for what the SDK would never send."""
    with httpx.Client(base_url=api_server.url("/v1"), timeout=30) as client:
        yield client


@pytest.fixture
def workspace_limits() -> Iterator[Callable[..., None]]:
    """`workspace_limits("acme", daily_token_limit=…)` for one test, restored afterwards."""
    saved: list[tuple[str, dict[str, Any]]] = []

    def set_limits(slug: str, **values: Any) -> None:
        def update() -> None:
            ai = ai_settings_get(workspace=Workspace.objects.get(slug=slug))
            saved.append((slug, {name: getattr(ai, name) for name in values}))
            for name, value in values.items():
                setattr(ai, name, value)
            ai.save(update_fields=list(values))

        run_committed(update)

    yield set_limits
    for slug, values in reversed(saved):

        def restore(slug: str = slug, values: dict[str, Any] = values) -> None:
            ai = ai_settings_get(workspace=Workspace.objects.get(slug=slug))
            for name, value in values.items():
                setattr(ai, name, value)
            ai.save(update_fields=list(values))

        run_committed(restore)


def call_logs(request_id: str) -> list[LlmCallLog]:
    """The call-log rows of one API request, once the queued records are stored."""

    def load() -> list[LlmCallLog]:
        call_records_flush()
        return list(LlmCallLog.objects.filter(request_id=request_id))

    return run_committed(load)


@pytest.fixture
def same_minute() -> None:
    """Rate limits count per fixed clock minute: a test that fills one starts at least 5 s before
    the minute ends, so its requests fall in one window."""
    seconds = time.time() % 60
    if seconds > 55:
        time.sleep(60 - seconds + 0.1)
