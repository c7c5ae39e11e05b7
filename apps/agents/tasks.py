"""Agents tasks. Tasks take ids, call one service, and run in the sender's workspace schema
(tenant-schemas-celery)."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from celery import shared_task

from apps.workspaces.selectors import workspace_current

from .chat.resume import answer_resume_publish
from .runs.executor import run_execute
from .runs.services import runs_janitor


@shared_task(ignore_result=True)
def resume_answer(answer_id: int) -> int:
    """Continue a chat answer whose held tool calls are all decided (once: only a waiting
    answer is taken)."""
    return async_to_sync(answer_resume_publish)(workspace_current(), answer_id)


@shared_task(ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def run_agent(run_id: int) -> str:
    """Run or resume a long run (skipped if another worker holds its lease or it ended)."""
    return async_to_sync(run_execute)(workspace=workspace_current(), run_id=run_id)


@shared_task(ignore_result=True)
def requeue_stale_runs() -> int:
    """Runs whose worker stopped renewing its lease go back on the queue (beat)."""
    return runs_janitor()
