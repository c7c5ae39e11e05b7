"""Slug rules: lowercase letters, digits and hyphens, 3–40 characters, reserved names refused."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.workspaces.validators import RESERVED_SLUGS, schema_name_for, validate_slug


@pytest.mark.parametrize("slug", ["abc", "acme", "acme-2", "a1b2c3", "123", "x" * 40, "my-big-co"])
def test_valid_slugs_pass(slug):
    validate_slug(slug)


@pytest.mark.parametrize(
    ("slug", "code"),
    [
        ("ab", "length"),
        ("x" * 41, "length"),
        ("Acme", "invalid"),
        ("ac_me", "invalid"),
        ("ac me", "invalid"),
        ("-acme", "invalid"),
        ("acme-", "invalid"),
        ("ac--me", "invalid"),
        ("acmé", "invalid"),
        ("pg-catalog", "reserved"),
    ],
)
def test_invalid_slugs_fail_with_a_reason(slug, code):
    with pytest.raises(ValidationError) as caught:
        validate_slug(slug)

    assert caught.value.code == code


@pytest.mark.parametrize(
    "slug", ["www", "admin", "api", "public", "static", "media", "mail", "app"]
)
def test_reserved_names_are_refused(slug):
    assert slug in RESERVED_SLUGS
    with pytest.raises(ValidationError, match="reserved"):
        validate_slug(slug)


def test_schema_name_replaces_hyphens():
    assert schema_name_for("my-big-co") == "my_big_co"
