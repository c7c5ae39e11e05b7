"""Billing's periodic work (beat schedule in settings): thin wrappers over services."""

from __future__ import annotations

from datetime import date, timedelta

from celery import Task, shared_task
from django.utils import timezone

from .debit_queue import call_debits_post
from .outcomes import outcomes_finalise
from .plans import all_workspaces_grant_monthly
from .usage import usage_push


@shared_task
def finalise_outcomes() -> int:
    """Bill the outcomes whose dispute window has passed (public schema: every workspace)."""
    return outcomes_finalise()


@shared_task
def grant_monthly_credits() -> str:
    """This month's plan credit for every workspace without a subscription (once per month)."""
    return str(all_workspaces_grant_monthly())


@shared_task
def post_call_debits() -> int:
    """Post the gateway's queued call debits to the ledger."""
    return call_debits_post()


@shared_task(bind=True, max_retries=4, default_retry_delay=900)
def push_usage_to_stripe(self: Task, day: str | None = None) -> str:
    """Push a day's usage (default: yesterday, UTC) to Stripe meter events; days that failed
    are retried later (the days already sent are skipped, so a retry never double counts)."""
    when = date.fromisoformat(day) if day else timezone.now().date() - timedelta(days=1)
    report = usage_push(day=when)
    if report.failed:
        raise self.retry(kwargs={"day": when.isoformat()})
    return str(report)
