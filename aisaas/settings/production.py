"""Production: every external service is configured explicitly; nothing embedded starts."""

from .base import *  # noqa: F403
from .base import FIELD_ENCRYPTION_KEYS, LOG_LEVEL, configure_logging, env

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")
if not env.str("DATABASE_URL", default="") or not env.str("REDIS_URL", default=""):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("Production needs DATABASE_URL and REDIS_URL.")
EMBEDDED_SERVICES = []
# No Stripe fake in production: without STRIPE_SECRET_KEY, Checkout and the usage push are off.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
LOGGING = configure_logging(level=LOG_LEVEL, fmt=env.str("LOG_FORMAT", default="json"))
if not FIELD_ENCRYPTION_KEYS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "Production needs FIELD_ENCRYPTION_KEYS (Fernet keys, newest first)."
    )
