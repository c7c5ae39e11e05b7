"""A task run by a real worker process runs in the schema of the code that sent it.

The worker reads the committed session workspaces from the test database; the `django_db` mark
makes pytest-django create that database even when these are the only tests selected.
"""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from apps.workspaces.tasks import workspace_schema_probe

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
