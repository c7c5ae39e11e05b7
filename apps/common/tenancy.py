"""Typed access to django-tenants' connection attributes (its backend adds them untyped)."""

from __future__ import annotations

from django.db import connection


def use_public_schema() -> None:
    """Point the default connection at the public schema."""
    connection.set_schema_to_public()  # type: ignore[attr-defined]


def current_schema() -> str:
    """The schema the default connection uses now."""
    return str(connection.schema_name)  # type: ignore[attr-defined]
