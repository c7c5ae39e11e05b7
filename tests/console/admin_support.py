"""Staff actors and trace rows for the trace admin tests (test_admin, test_replay, test_audit).

Rows are made directly (`make_trace`) when a test needs exact values — dates, scores, a huge
body, a removed alias — and through the real gateway (`chat_trace`) when it needs a real call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.llm.core.types import ChatRequest
from apps.llm.services import llm_chat
from apps.traces.models import LlmTrace
from apps.traces.services import call_records_flush
from apps.workspaces.models import User, Workspace
from tests.conftest import host_client
from tests.factories import LlmTraceFactory, UserFactory
from tests.gateway_support import user_actor

CONVERSATION = [
    {"role": "system", "content": "You are the assistant of the Acme workspace."},
    {"role": "user", "content": "What is the weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "call_1", "name": "weather", "arguments": {"city": "Paris"}}],
    },
    {"role": "tool", "content": "18 °C and sunny", "tool_call_id": "call_1", "name": "weather"},
]


def staff_user(group: str | None, *, superuser: bool = False) -> User:
    user = UserFactory.create(is_staff=True, is_superuser=superuser)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def support(db: None) -> User:
    return staff_user("support")


@pytest.fixture
def finance(db: None) -> User:
    return staff_user("finance")


@pytest.fixture
def superuser(db: None) -> User:
    return staff_user(None, superuser=True)


def admin_client(user: User) -> Client:
    """A logged-in client on the public host, where /admin/ lives."""
    return host_client("localhost", user)


def admin_url(name: str, *args: Any) -> str:
    """An admin URL: admin lives on the public host's URLconf, not the workspaces' one."""
    return reverse(f"admin:{name}", args=args, urlconf="aisaas.urls_public")


def make_trace(
    workspace: Workspace,
    *,
    created_at: datetime | None = None,
    messages: list[dict[str, Any]] | None = None,
    response: str = "It is 18 °C and sunny in Paris.",
    score: int | None = None,
    **call: Any,
) -> LlmTrace:
    """A call-log row and its trace, as `call_records_flush` would store them."""
    return LlmTraceFactory.create(
        workspace=workspace,
        created_at=created_at or timezone.now(),
        messages=CONVERSATION if messages is None else messages,
        response=response,
        score=score,
        **{f"call__{name}": value for name, value in call.items()},
    )


def chat_trace(workspace: Workspace, user: User, request: ChatRequest) -> LlmTrace:
    """One real gateway call (offline model), stored as the beat task would store it."""
    answer = llm_chat(
        workspace=workspace, actor=user_actor(user), feature="chat", request=request, user=user
    )
    call_records_flush()
    return LlmTrace.objects.select_related("call").get(trace_id=answer.trace_id)
