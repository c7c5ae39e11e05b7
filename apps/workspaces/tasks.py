"""Workspace tasks. Tasks take ids, call one service, and carry the sender's schema."""

from __future__ import annotations

from celery import shared_task

from apps.common.tenancy import current_schema


@shared_task
def workspace_schema_probe() -> str:
    """Name the schema this task ran in: proves the worker entered the sender's workspace."""
    return current_schema()
