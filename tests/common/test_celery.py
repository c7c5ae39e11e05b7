"""A task run by a real worker process runs in the schema of the code that sent it.

The worker reads the committed session workspaces from the test database; the `django_db` mark
makes pytest-django create that database even when these are the only tests selected.
"""

from __future__ import annotations

import time

import pytest
from django_tenants.utils import schema_context

from apps.rag.models import Document
from apps.rag.services import document_add
from apps.workspaces.tasks import workspace_schema_probe
from tests.asgi_server import run_committed

pytestmark = pytest.mark.django_db

TASK_TIMEOUT_SECONDS = 30


@pytest.mark.parametrize("schema", ["acme", "globex"])
def test_a_task_sent_from_a_workspace_runs_in_that_workspace(celery_worker, schema):
    with schema_context(schema):
        result = workspace_schema_probe.delay()

    assert result.get(timeout=TASK_TIMEOUT_SECONDS) == schema


def test_a_task_sent_from_public_runs_in_public(celery_worker):
    result = workspace_schema_probe.delay()

    assert result.get(timeout=TASK_TIMEOUT_SECONDS) == "public"


def test_tasks_from_two_workspaces_in_a_row_do_not_leak_schemas(celery_worker):
    # One solo worker runs both: the second must not inherit the first's schema.
    with schema_context("acme"):
        first = workspace_schema_probe.delay()
    second = workspace_schema_probe.delay()

    assert first.get(timeout=TASK_TIMEOUT_SECONDS) == "acme"
    assert second.get(timeout=TASK_TIMEOUT_SECONDS) == "public"


def test_a_document_added_in_a_workspace_is_indexed_by_the_worker_there(celery_worker, owner):
    # given a committed document added in acme (the worker sees committed rows only)
    def add() -> int:
        with schema_context("acme"):
            return document_add(
                user=owner, data=b"# Notes\n\nThe kiln fires at 1240 C.", filename="kiln.md"
            ).pk

    document_id = run_committed(add)

    def status() -> tuple[str, int]:
        with schema_context("acme"):
            found = Document.objects.get(pk=document_id)
            return found.status, found.chunks.filter(vector__isnull=False).count()

    try:
        # when the worker picks up the task sent by name after the commit
        deadline = time.monotonic() + 90  # the first document loads the embedding model
        while run_committed(status)[0] not in ("ready", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
        # then it indexed the document in acme's schema
        assert run_committed(status) == ("ready", 1), celery_worker.output()[-3000:]
    finally:

        def delete() -> None:
            with schema_context("acme"):
                Document.objects.filter(pk=document_id).delete()

        run_committed(delete)
