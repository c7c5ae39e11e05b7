"""Tests: `make test`. Own embedded services (profile `test`: own data dirs and ports)."""

from .base import *  # noqa: F403
from .base import STORAGES

DEBUG = False
SECRET_KEY = "test-secret-key-not-for-production"  # noqa: S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
WHITENOISE_USE_FINDERS = True
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
LOG_FORMAT = "console"
STATIC_ROOT = None
