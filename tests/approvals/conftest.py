"""Approvals fixtures: a Task helper in acme with the task tools, and a ToolContext maker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_tenants.utils import schema_context

from apps.agents.models import Agent
from apps.agents.tools.registry import ToolContext
from apps.approvals.models import AutonomyRule, Level
from apps.workspaces.models import User, Workspace
from apps.workspaces.selectors import membership_get
from tests.gateway_support import gateway_settings

TASK_TOOLS = ["list_tasks", "create_task", "update_task", "delete_task"]


@pytest.fixture
def in_acme(acme: Workspace) -> Iterator[None]:
    with schema_context(acme.schema_name), gateway_settings():
        yield


@pytest.fixture
def helper(in_acme: None) -> Agent:
    return Agent.objects.create(name="Task helper", slug="task-helper", tools=TASK_TOOLS)


def ctx_for(
    workspace: Workspace, user: User, agent: Agent, *, run_key: str = "answer-1", **extra: object
) -> ToolContext:
    membership = membership_get(workspace=workspace, user=user)
    assert membership is not None
    return ToolContext(
        workspace=workspace,
        agent=agent,
        user=user,
        membership=membership,
        run_key=run_key,
        **extra,  # type: ignore[arg-type]
    )


def set_level(agent: Agent | None, target: str, level: Level, approvers: str = "admins") -> None:
    AutonomyRule.objects.update_or_create(
        agent_id=agent.pk if agent else None,
        target=target,
        defaults={"level": level, "approvers": approvers},
    )


# A real Celery worker (tests/common/conftest.py): the decision's commit queues the resume.
from tests.agents.conftest import _close_consumer_connections, member_cookie  # noqa: E402, F401
from tests.common.conftest import (  # noqa: E402, F401
    _celery_worker_stops_with_module,
    celery_worker,
    celery_worker_process,
    no_celery_worker,
)
