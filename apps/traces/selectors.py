"""Reads of the call log and traces. Public-schema tables: every read names its workspace."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from apps.common.errors import NotFoundError
from apps.workspaces.models import Workspace

from .models import LlmCallLog, LlmTrace


def call_log_list(*, workspace: Workspace, feature: str | None = None) -> QuerySet[LlmCallLog]:
    """The workspace's calls, newest first; `feature` narrows to one feature."""
    calls = LlmCallLog.objects.filter(workspace=workspace)
    if feature is not None:
        calls = calls.filter(feature=feature)
    return calls.order_by("-created_at")


def access_trace(*, workspace: Workspace, trace_id: str | uuid.UUID) -> LlmTrace:
    """The trace `trace_id` of `workspace`; one answer for "missing" and "another workspace's"."""
    try:
        return LlmTrace.objects.select_related("call").get(
            workspace=workspace, trace_id=uuid.UUID(str(trace_id))
        )
    except (ValueError, LlmTrace.DoesNotExist) as exc:
        raise NotFoundError("No such trace.") from exc
