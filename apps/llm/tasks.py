from __future__ import annotations

from celery import shared_task

from .services import (
    all_workspaces_stored_responses_expire,
    llm_after_call_replay,
    llm_reservations_janitor,
)


@shared_task(ignore_result=True)
def release_expired_reservations() -> int:
    """Give back budget reserved by calls whose process died before settling."""
    return llm_reservations_janitor()


@shared_task(ignore_result=True)
def replay_after_call_writes() -> int:
    """Settles, debits and call records Redis refused when their call ended: perform them now."""
    return llm_after_call_replay()


@shared_task(ignore_result=True)
def expire_stored_responses() -> int:
    """Delete `/v1/responses` answers whose retention ended, in every workspace."""
    return all_workspaces_stored_responses_expire()
