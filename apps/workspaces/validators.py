"""Workspace slug rules: the slug is a DNS label under BASE_DOMAIN and names the schema."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError

SLUG_MIN, SLUG_MAX = 3, 40
# Lowercase letters, digits and single hyphens; no hyphen at either end (a valid DNS label).
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Host names the platform uses or may use, and names that would confuse users or PostgreSQL.
RESERVED_SLUGS = frozenset(
    {
        "admin",
        "api",
        "app",
        "apps",
        "assets",
        "auth",
        "billing",
        "blog",
        "cdn",
        "dashboard",
        "dev",
        "docs",
        "ftp",
        "help",
        "information-schema",
        "localhost",
        "login",
        "mail",
        "media",
        "mx",
        "ns1",
        "ns2",
        "pop",
        "public",
        "root",
        "signup",
        "smtp",
        "stage",
        "staging",
        "static",
        "status",
        "support",
        "system",
        "test",
        "webhooks",
        "www",
        "aisaas",
    }
)


# The platform's own workspaces (admin replays, evals, retrieval evals), created on first use:
# their default names and the names their settings give now. Reserved, so that no sign-up on a
# fresh deployment takes one before the platform does (and then sees its replays).
SYSTEM_SLUGS = frozenset({"platform", "evals", "rag-evals"})
SYSTEM_SLUG_SETTINGS = ("PLATFORM_WORKSPACE", "EVALS_WORKSPACE")


def system_slugs() -> frozenset[str]:
    """Every slug a system workspace has or may have."""
    return SYSTEM_SLUGS | {str(getattr(settings, name)) for name in SYSTEM_SLUG_SETTINGS}


def validate_slug(value: str, *, system: bool = False) -> None:
    """Raise ValidationError with a precise message when `value` cannot be a workspace slug.
    `system`: the platform creates one of its own workspaces, whose slugs only it may take."""
    if not SLUG_MIN <= len(value) <= SLUG_MAX:
        raise ValidationError(
            f"Use {SLUG_MIN} to {SLUG_MAX} characters (this one has {len(value)}).", code="length"
        )
    if not SLUG_RE.match(value):
        raise ValidationError(
            "Use lowercase letters, digits and single hyphens, starting and ending with a letter "
            "or digit.",
            code="invalid",
        )
    if system and value in system_slugs():
        return
    if value in RESERVED_SLUGS or value in system_slugs() or value.startswith("pg-"):
        raise ValidationError(f"“{value}” is reserved; choose another name.", code="reserved")


def schema_name_for(slug: str) -> str:
    """PostgreSQL schema for a slug: hyphens become underscores (slugs never hold underscores)."""
    return slug.replace("-", "_")
