from __future__ import annotations

from celery import shared_task

from .retention import all_workspaces_retention_apply
from .services import call_records_flush


@shared_task(ignore_result=True)
def flush_call_records() -> int:
    """Store queued gateway call records (beat runs this every few seconds)."""
    return call_records_flush()


@shared_task(ignore_result=True)
def apply_retention() -> int:
    """Delete raw and masked trace content past each plan's retention (beat, daily); return how
    many rows went. The counts per workspace are logged."""
    return sum(c.deleted for c in all_workspaces_retention_apply())
