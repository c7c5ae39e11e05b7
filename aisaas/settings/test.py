"""Tests: `make test`. Own embedded services (profile `test`: own data dirs and ports)."""

import os

from .base import *  # noqa: F403
from .base import DATABASES, STORAGES

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
