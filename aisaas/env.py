"""The one place that reads the environment (and `.env`); settings import from here.

Unset DATABASE_URL / REDIS_URL mean "use the embedded servers of this profile":
the URLs are computed here without starting anything; entry points start them
(`aisaas.devstack.ensure_running`), so importing settings never has side effects.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ

from aisaas import devstack

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# `.env` fills only what the real environment leaves unset; tests ignore it so they are
# reproducible on any machine.
if not os.environ.get("DJANGO_SETTINGS_MODULE", "").endswith(".test"):
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def profile() -> str:
    """`test` under the test settings, `dev` otherwise: picks embedded data dirs and ports."""
    return "test" if os.environ.get("DJANGO_SETTINGS_MODULE", "").endswith(".test") else "dev"


def embedded_services() -> list[devstack.Service]:
    """Embedded servers standing in for whichever of DATABASE_URL / REDIS_URL is unset."""
    return devstack.services_for(profile())


def _embedded_url(name: str) -> str | None:
    return next((s.url for s in embedded_services() if s.name == name), None)


def database_url() -> str:
    return env.str("DATABASE_URL", default="") or str(_embedded_url("postgres"))


def redis_url() -> str:
    return env.str("REDIS_URL", default="") or str(_embedded_url("redis"))


def stripe_fake() -> devstack.StripeFakeService | None:
    """The loopback Stripe fake standing in for Stripe in development (no STRIPE_SECRET_KEY):
    settings take its URL and secrets; `python -m aisaas.devstack run` starts it."""
    return devstack.stripe_fake_for(profile())
