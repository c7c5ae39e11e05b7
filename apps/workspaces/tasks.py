"""Workspace tasks. Tasks take ids, call one service, and carry the sender's schema."""

from __future__ import annotations

from celery import shared_task
from django.db import connection


@shared_task
def workspace_schema_probe() -> str:
    """Name the schema this task ran in: proves the worker entered the sender's workspace."""
    return str(connection.schema_name)  # type: ignore[attr-defined]  # django-tenants backend
