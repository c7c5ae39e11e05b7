"""The project's Redis clients, all with timeouts (settings.REDIS_TIMEOUTS): a Redis that
accepts connections and never answers must fail a command in seconds, never hang a request, a
model call or a worker. Django's cache, the channel layer and Celery get the same timeouts from
settings."""

from __future__ import annotations

import redis
from django.conf import settings


def redis_sync_client(url: str | None = None) -> redis.Redis:
    """A redis-py client on `url` (default settings.REDIS_URL) that gives up in time."""
    return redis.Redis.from_url(url or settings.REDIS_URL, **settings.REDIS_TIMEOUTS)
