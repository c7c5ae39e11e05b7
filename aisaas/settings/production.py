"""Production: every external service is configured explicitly; nothing embedded starts."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import FIELD_ENCRYPTION_KEYS, KNOWN_SECRET_KEYS, LOG_LEVEL, configure_logging, env

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")
# The rule of Django's own deploy check (security.W009), plus the keys this repository publishes:
# refused at start, not merely warned about.
if (
    SECRET_KEY in KNOWN_SECRET_KEYS
    or SECRET_KEY.startswith("django-insecure-")
    or len(SECRET_KEY) < 50
    or len(set(SECRET_KEY)) < 5
):
    raise ImproperlyConfigured(
        "SECRET_KEY is a published default or too weak: set 50+ random characters, e.g. "
        'python -c "import secrets; print(secrets.token_urlsafe(50))"'
    )
if not env.str("DATABASE_URL", default="") or not env.str("REDIS_URL", default=""):
    raise ImproperlyConfigured("Production needs DATABASE_URL and REDIS_URL.")
EMBEDDED_SERVICES = []
# No Stripe fake in production: without STRIPE_SECRET_KEY, Checkout and the usage push are off.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# HTTPS only: plain-HTTP requests are redirected (health probes from inside the network exempt),
# and browsers are told to use HTTPS for a year on this host and every workspace subdomain.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
LOGGING = configure_logging(level=LOG_LEVEL, fmt=env.str("LOG_FORMAT", default="json"))
if not FIELD_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "Production needs FIELD_ENCRYPTION_KEYS (Fernet keys, newest first)."
    )
