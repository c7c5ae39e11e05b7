"""Workspace settings: rename, roles, removal — with the owner rules enforced."""

from __future__ import annotations

import pytest

from apps.workspaces.models import Membership, Role
from tests.conftest import host_client

pytestmark = pytest.mark.django_db


def _membership(workspace, user) -> Membership:
    return Membership.objects.get(workspace=workspace, user=user)


def test_settings_page_lists_members_and_their_roles(owner):
    response = host_client("acme.localhost", owner).get("/settings/")

    assert response.status_code == 200
    members = {m.user.email: m.role for m in response.context["members"]}
    assert members == {"owner@acme.test": "owner", "member@acme.test": "member"}


def test_owner_renames_the_workspace(owner, acme):
    response = host_client("acme.localhost", owner).post(
        "/settings/rename/", {"name": "  Acme Labs "}
    )

    assert response.status_code == 302
    acme.refresh_from_db()
    assert acme.name == "Acme Labs"
    assert acme.slug == "acme"


def test_rename_to_blank_is_a_form_error(owner, acme):
    response = host_client("acme.localhost", owner).post("/settings/rename/", {"name": "   "})

    assert response.status_code == 400
    assert "required" in " ".join(response.context["rename_form"].errors["name"]).lower()
    acme.refresh_from_db()
    assert acme.name == "Acme"


def test_a_member_cannot_rename(member, acme):
    response = host_client("acme.localhost", member).post("/settings/rename/", {"name": "Mine"})

    assert response.status_code == 403
    acme.refresh_from_db()
    assert acme.name == "Acme"


def test_owner_promotes_a_member_to_admin(owner, member, acme):
    target = _membership(acme, member)

    host_client("acme.localhost", owner).post(
        f"/settings/members/{target.pk}/role/", {"role": "admin"}
    )

    assert _membership(acme, member).role == Role.ADMIN


def test_an_unknown_role_is_refused(owner, member, acme):
    target = _membership(acme, member)

    response = host_client("acme.localhost", owner).post(
        f"/settings/members/{target.pk}/role/", {"role": "god"}
    )

    assert response.status_code == 302
    assert _membership(acme, member).role == Role.MEMBER


def test_an_admin_cannot_make_anyone_owner(owner, member, acme):
    Membership.objects.filter(pk=_membership(acme, member).pk).update(role=Role.ADMIN)
    client = host_client("acme.localhost", member)

    client.post(f"/settings/members/{_membership(acme, member).pk}/role/", {"role": "owner"})
    client.post(f"/settings/members/{_membership(acme, owner).pk}/role/", {"role": "member"})

    assert _membership(acme, member).role == Role.ADMIN
    assert _membership(acme, owner).role == Role.OWNER


def test_the_last_owner_cannot_step_down_or_leave(owner, acme):
    client = host_client("acme.localhost", owner)
    me = _membership(acme, owner)

    role_response = client.post(f"/settings/members/{me.pk}/role/", {"role": "member"}, follow=True)
    leave_response = client.post(f"/settings/members/{me.pk}/remove/", follow=True)

    assert _membership(acme, owner).role == Role.OWNER
    assert "at least one owner" in role_response.content.decode()
    assert "at least one owner" in leave_response.content.decode()


def test_owner_hands_over_then_steps_down(owner, member, acme):
    client = host_client("acme.localhost", owner)

    client.post(f"/settings/members/{_membership(acme, member).pk}/role/", {"role": "owner"})
    client.post(f"/settings/members/{_membership(acme, owner).pk}/role/", {"role": "member"})

    assert _membership(acme, member).role == Role.OWNER
    assert _membership(acme, owner).role == Role.MEMBER


def test_owner_removes_a_member_who_then_gets_404(owner, member, acme):
    target = _membership(acme, member)

    host_client("acme.localhost", owner).post(f"/settings/members/{target.pk}/remove/")

    assert not Membership.objects.filter(pk=target.pk).exists()
    assert host_client("acme.localhost", member).get("/").status_code == 404


def test_a_member_leaves_and_is_sent_to_the_public_host(member, acme):
    response = host_client("acme.localhost", member).post(
        f"/settings/members/{_membership(acme, member).pk}/remove/"
    )

    assert response.status_code == 302
    assert response["Location"] == "http://localhost:8000/"
    assert not Membership.objects.filter(workspace=acme, user=member).exists()


def test_a_member_cannot_remove_others(member, owner, acme):
    host_client("acme.localhost", member).post(
        f"/settings/members/{_membership(acme, owner).pk}/remove/"
    )

    assert Membership.objects.filter(workspace=acme, user=owner).exists()


def test_a_membership_of_another_workspace_is_404_here(owner, outsider, globex):
    foreign = _membership(globex, outsider)

    response = host_client("acme.localhost", owner).post(
        f"/settings/members/{foreign.pk}/role/", {"role": "admin"}
    )

    assert response.status_code == 404
    assert _membership(globex, outsider).role == Role.MEMBER
