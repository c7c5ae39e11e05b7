from __future__ import annotations

from celery import shared_task

from .services import call_records_flush


@shared_task(ignore_result=True)
def flush_call_records() -> int:
    """Store queued gateway call records (beat runs this every few seconds)."""
    return call_records_flush()
