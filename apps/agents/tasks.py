"""Agents tasks. Tasks take ids, call one service, and run in the sender's workspace schema
(tenant-schemas-celery)."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from celery import shared_task

from apps.workspaces.selectors import workspace_current

from .chat.resume import answer_resume_publish


@shared_task(ignore_result=True)
def resume_answer(answer_id: int) -> int:
    """Continue a chat answer whose held tool calls are all decided (once: only a waiting
    answer is taken)."""
    return async_to_sync(answer_resume_publish)(workspace_current(), answer_id)
