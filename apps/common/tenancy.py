"""Typed access to django-tenants' connection attributes (its backend adds them untyped)."""

from __future__ import annotations

from django.db import connection
from django_tenants.utils import get_public_schema_name

# Cache keys about people and addresses, not a workspace's data: allauth's rate limits (failed
# logins per account and per IP, sign-ups, password resets). They must count the same whichever
# host a request comes to, so they live under the public schema's prefix whatever schema the
# request uses; a per-schema prefix gave every workspace host fresh guesses.
PLATFORM_WIDE_CACHE_KEYS = ("allauth:rl:",)


def use_public_schema() -> None:
    """Point the default connection at the public schema."""
    connection.set_schema_to_public()  # type: ignore[attr-defined]


def current_schema() -> str:
    """The schema the default connection uses now."""
    return str(connection.schema_name)  # type: ignore[attr-defined]


def cache_key(key: str, key_prefix: str, version: int) -> str:
    """The cache's KEY_FUNCTION: keys start with the schema (no entry crosses workspaces),
    except the platform-wide ones above, which start with the public schema."""
    schema = (
        get_public_schema_name() if key.startswith(PLATFORM_WIDE_CACHE_KEYS) else current_schema()
    )
    return f"{schema}:{key_prefix}:{version}:{key}"
