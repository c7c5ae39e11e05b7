"""Tests: `make test`. Own embedded services (profile `test`: own data dirs and ports)."""

import os
from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import CACHES, CHANNEL_LAYERS, DATABASES, REDIS_URL, STORAGES

DEBUG = False
SECRET_KEY = "test-secret-key-not-for-production"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
WHITENOISE_USE_FINDERS = True
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# No collected static files in tests: WhiteNoise serves from the finders.
STATIC_ROOT = None  # type: ignore[assignment]

# One test database per pytest process, so concurrent runs on one machine never drop each
# other's database; tests/conftest.py drops those of processes that no longer run.
# template0 accepts no connections, so concurrent CREATE DATABASE never finds it "in use".
DATABASES["default"]["TEST"] = {"NAME": f"test_aisaas_{os.getpid()}", "TEMPLATE": "template0"}

# allauth's per-IP rate limits live in Redis; tests log in and sign up far faster than people.
ACCOUNT_RATE_LIMITS = False

# pytest-xdist: each worker process (PYTEST_XDIST_WORKER gw0, gw1, …) uses a Redis logical
# database of its own on the embedded test Redis (gw0 → 1, gw1 → 2, …; a serial run and the
# xdist controller use 0), so a worker never sees another's counters, queues (`all_workspaces:*`),
# channel layer or Celery broker. A REDIS_URL from the environment is used as given: that is also
# how the daphne, Celery and debit-worker processes a test starts share its database.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _XDIST_WORKER and not os.environ.get("REDIS_URL"):
    _redis_db = 1 + int(_XDIST_WORKER.removeprefix("gw"))
    if _redis_db > 15:
        raise ImproperlyConfigured(
            f"Worker {_XDIST_WORKER} has no Redis database of its own (1–15): use at most 15."
        )
    REDIS_URL = f"{REDIS_URL.rsplit('/', 1)[0]}/{_redis_db}"
    CACHES["default"]["LOCATION"] = REDIS_URL
    cast(dict[str, Any], CHANNEL_LAYERS["default"]["CONFIG"])["hosts"][0]["address"] = REDIS_URL
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
