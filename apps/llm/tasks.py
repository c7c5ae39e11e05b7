from __future__ import annotations

from celery import shared_task

from .services import llm_reservations_janitor


@shared_task(ignore_result=True)
def release_expired_reservations() -> int:
    """Give back budget reserved by calls whose process died before settling."""
    return llm_reservations_janitor()
