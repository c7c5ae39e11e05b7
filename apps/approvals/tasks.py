"""Approvals tasks: overdue actions expire (a rejection the agent is told about)."""

from __future__ import annotations

from celery import shared_task
from django_tenants.utils import tenant_context

from apps.workspaces.models import Workspace

from .services import actions_expire


@shared_task(ignore_result=True)
def expire_actions() -> int:
    """Every workspace's overdue pending actions → expired (beat, every minute)."""
    total = 0
    for workspace in Workspace.objects.tenants().order_by("pk").iterator():
        with tenant_context(workspace):
            total += actions_expire(workspace=workspace)
    return total
