"""Health of the parts the product needs: database, Redis, pgvector, Celery workers."""

from __future__ import annotations

from collections.abc import Callable

import redis
import structlog
from celery import current_app
from django.conf import settings
from django.db import connection

log = structlog.get_logger(__name__)

CELERY_PING_TIMEOUT = 1.0


class HealthCheckError(RuntimeError):
    """A failure described in our own words: safe to show in the response."""


def check_db() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def check_pgvector() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    if row is None:
        raise HealthCheckError("the vector extension is not installed")
    return str(row[0])


def check_redis() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


def check_celery() -> str:
    # The project's app (aisaas/__init__.py makes it current before anything runs): the
    # project package sits above every app, so it is never imported from here.
    app = current_app
    # Connect once, without kombu's default retries: a broker that is down fails the check at
    # once instead of after seconds of reconnect attempts.
    with app.connection_for_write(connect_timeout=CELERY_PING_TIMEOUT) as broker:
        broker.ensure_connection(max_retries=0)
        # limit=1: return as soon as one worker answers instead of waiting out the timeout.
        replies = app.control.ping(timeout=CELERY_PING_TIMEOUT, limit=1, connection=broker)
    if not replies:
        raise HealthCheckError("no worker answered")
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {
    "db": check_db,
    "redis": check_redis,
    "pgvector": check_pgvector,
    "celery": check_celery,
}


def health_report() -> tuple[bool, dict[str, str]]:
    """Run every check; a failing part reports `error: <why>` and makes the whole unhealthy."""
    report: dict[str, str] = {}
    healthy = True
    for name, check in CHECKS.items():
        try:
            report[name] = check()
        except Exception as exc:
            healthy = False
            # The response names the part and the kind of failure; the details (addresses,
            # credentials in URLs) go to the log only.
            report[name] = (
                f"error: {exc if isinstance(exc, HealthCheckError) else type(exc).__name__}"
            )
            log.warning("health.check_failed", part=name, error=str(exc)[:500])
    return healthy, report
