"""The one Stripe client of the process, built from settings (the raw official SDK).

STRIPE_API_BASE points it elsewhere than api.stripe.com: the loopback Stripe fake in development
and tests. A loopback base is reached directly, never through a proxy from the environment.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

import requests
import stripe
from django.conf import settings

from apps.common.errors import ApplicationError

# The SDK retries connection errors and 409/429/5xx with the same idempotency key.
MAX_NETWORK_RETRIES = 2
TIMEOUT_SECONDS = 30
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class StripeUnavailableError(ApplicationError):
    status = 503
    code = "stripe_unavailable"


def stripe_client() -> stripe.StripeClient:
    """The client for the configured account; StripeUnavailableError when none is configured."""
    if not settings.STRIPE_SECRET_KEY:
        raise StripeUnavailableError(
            "Payments are not configured on this server (STRIPE_SECRET_KEY is unset)."
        )
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str) -> stripe.StripeClient:
    if not api_base:
        return stripe.StripeClient(api_key, max_network_retries=MAX_NETWORK_RETRIES)
    http_client = None
    if urlsplit(api_base).hostname in LOOPBACK_HOSTS:
        session = requests.Session()
        session.trust_env = False  # no HTTP(S)_PROXY for a server on this machine
        http_client = stripe.RequestsClient(session=session, timeout=TIMEOUT_SECONDS)
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base, "meter_events": api_base},
        max_network_retries=MAX_NETWORK_RETRIES,
        http_client=http_client,
    )
