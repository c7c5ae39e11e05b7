"""Reads of the call log and traces. Public-schema tables: every read names its workspace."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from apps.common.errors import ApplicationError, NotFoundError
from apps.workspaces.models import Workspace

from .models import LlmCallLog, LlmTrace


def call_log_list(*, workspace: Workspace, feature: str | None = None) -> QuerySet[LlmCallLog]:
    """The workspace's calls, newest first; `feature` narrows to one feature."""
    calls = LlmCallLog.objects.filter(workspace=workspace)
    if feature is not None:
        calls = calls.filter(feature=feature)
    return calls.order_by("-created_at")


def trace_id_check(*, workspace: Workspace, trace_id: uuid.UUID | None) -> None:
    """Refuse a trace id that names another workspace's call (an outcome, say, must not point
    at a foreign trace). One not stored yet passes: records land seconds after their call."""
    if (
        trace_id is not None
        and LlmCallLog.objects.filter(trace_id=trace_id).exclude(workspace=workspace).exists()
    ):
        raise ApplicationError("No call of this workspace has this trace_id.", field="trace_id")


def access_trace(*, workspace: Workspace, trace_id: str | uuid.UUID) -> LlmTrace:
    """The trace `trace_id` of `workspace`; one answer for "missing" and "another workspace's"."""
    try:
        return LlmTrace.objects.select_related("call").get(
            workspace=workspace, trace_id=uuid.UUID(str(trace_id))
        )
    except (ValueError, LlmTrace.DoesNotExist) as exc:
        raise NotFoundError("No such trace.") from exc
