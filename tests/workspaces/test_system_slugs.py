"""System workspace slugs (admin replays, evals) are reserved: a sign-up can never own the
workspace the platform's own calls run in, and the platform never runs in one it didn't make."""

from __future__ import annotations

import pytest
from django.test import override_settings

from apps.common.errors import ApplicationError
from apps.workspaces.models import Workspace
from apps.workspaces.services import (
    NotASystemWorkspaceError,
    system_workspace_get_or_create,
    workspace_create,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

STRONG = "violet-harbour-lantern-42"


@pytest.mark.parametrize("slug", ["platform", "evals", "rag-evals"])
def test_signup_cannot_take_a_system_slug(public_client, slug):
    response = public_client.post(
        "/accounts/signup/",
        {
            "email": "squatter@example.test",
            "password1": STRONG,
            "password2": STRONG,
            "workspace_name": "Mine now",
            "workspace_slug": slug,
        },
    )

    assert response.status_code == 200
    assert "reserved" in response.content.decode()
    assert not Workspace.objects.filter(slug=slug).exists()


def test_the_configured_system_slugs_are_reserved_too(owner):
    with (
        override_settings(PLATFORM_WORKSPACE="ops-replays"),
        pytest.raises(ApplicationError, match="reserved"),
    ):
        workspace_create(name="Ops", slug="ops-replays", owner=owner)


@override_settings(PLATFORM_WORKSPACE="plat-taken")
def test_a_system_slug_held_by_a_customer_is_not_used_for_system_calls(owner):
    # As an older deployment let a sign-up take it: a customer owns the slug.
    workspace_create(name="Squatter", slug="plat-taken", owner=owner, system=True)

    with pytest.raises(NotASystemWorkspaceError, match="not the platform's own"):
        system_workspace_get_or_create(slug="plat-taken", name="Platform (system)")


def test_a_person_registered_as_the_system_owner_owns_nothing():
    UserFactory.create(email="system@system.invalid")  # has a password: a person

    with (
        override_settings(PLATFORM_WORKSPACE="plat-fresh"),
        pytest.raises(NotASystemWorkspaceError),
    ):
        system_workspace_get_or_create(slug="plat-fresh", name="Platform (system)")
    assert not Workspace.objects.filter(slug="plat-fresh").exists()


def test_system_workspace_is_created_under_its_reserved_slug():
    with override_settings(EVALS_WORKSPACE="evals-fresh"):
        workspace = system_workspace_get_or_create(slug="evals-fresh", name="Evals (system)")
        assert system_workspace_get_or_create(slug="evals-fresh", name="x").pk == workspace.pk

    owner = workspace.created_by
    assert owner is not None
    assert owner.email == "system@system.invalid"
    assert not owner.has_usable_password()


def test_only_system_slugs_are_system_workspaces():
    with pytest.raises(Exception, match="not a system workspace slug"):
        system_workspace_get_or_create(slug="acme", name="Acme")
