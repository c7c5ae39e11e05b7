"""Invitations: owners/admins invite by email, the invitee accepts once; bad links get precise errors."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from apps.workspaces.models import Invitation, Membership, Role
from apps.workspaces.services import invitation_create
from tests.conftest import host_client
from tests.factories import InvitationFactory, UserFactory

pytestmark = pytest.mark.django_db


def _invite_link_token() -> str:
    match = re.search(r"/invitations/([\w-]+)/", str(mail.outbox[-1].body))
    assert match, mail.outbox[-1].body
    return match.group(1)


def test_owner_invites_by_email_and_the_invitee_joins(
    owner, acme, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = host_client("acme.localhost", owner).post(
            "/settings/invitations/", {"email": "New.Hire@Example.test", "role": "admin"}
        )
    assert response.status_code == 302
    assert mail.outbox[-1].to == ["new.hire@example.test"]
    token = _invite_link_token()
    invitee = UserFactory.create(email="new.hire@example.test")

    accepted = host_client("localhost", invitee).post(f"/invitations/{token}/")

    assert accepted.status_code == 302
    assert accepted["Location"] == "/workspaces/acme/open/"
    assert Membership.objects.get(workspace=acme, user=invitee).role == Role.ADMIN
    invitation = Invitation.objects.get(email="new.hire@example.test")
    assert invitation.accepted_by == invitee
    assert not Invitation.objects.filter(token_hash=token).exists(), "only the hash is stored"


def test_invitation_page_shows_who_invites_and_offers_signup(acme, owner):
    InvitationFactory.create(
        workspace=acme, invited_by=owner, email="guest@example.test", token="tok-1"
    )

    response = host_client("localhost").get("/invitations/tok-1/")

    assert response.status_code == 200
    assert b"owner@acme.test" in response.content
    assert b"/accounts/signup/?next=/invitations/tok-1/" in response.content


def test_a_member_cannot_invite(member, acme):
    response = host_client("acme.localhost", member).post(
        "/settings/invitations/", {"email": "friend@example.test", "role": "member"}
    )

    assert response.status_code == 403
    assert "Only owners and admins" in response.content.decode()
    assert not Invitation.objects.filter(workspace=acme).exists()


def test_an_admin_cannot_invite_an_owner(acme, member):
    Membership.objects.filter(workspace=acme, user=member).update(role=Role.ADMIN)

    response = host_client("acme.localhost", member).post(
        "/settings/invitations/", {"email": "boss@example.test", "role": "owner"}
    )

    assert response.status_code == 403
    assert "Only owners can invite another owner" in response.content.decode()


@pytest.mark.parametrize(
    ("email", "message"),
    [("not-an-email", "Enter a valid email address"), ("member@acme.test", "already a member")],
)
def test_bad_invitations_get_precise_errors(owner, acme, email, message):
    response = host_client("acme.localhost", owner).post(
        "/settings/invitations/", {"email": email, "role": "member"}
    )

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Invitation.objects.filter(workspace=acme).exists()


def test_reinviting_replaces_the_open_invitation(owner, acme):
    actor = Membership.objects.get(workspace=acme, user=owner)
    first, first_token = invitation_create(actor=actor, email="twice@example.test")
    second, _ = invitation_create(actor=actor, email="twice@example.test")

    first.refresh_from_db()
    assert first.revoked_at is not None
    assert second.is_open
    invitee = UserFactory.create(email="twice@example.test")
    response = host_client("localhost", invitee).post(f"/invitations/{first_token}/")
    assert "withdrawn" in response.content.decode()


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"expires_at": timezone.now() - timedelta(minutes=1)}, "expired"),
        ({"accepted_at": timezone.now()}, "already been used"),
        ({"revoked_at": timezone.now()}, "withdrawn"),
        (
            {"email": "someone.else@example.test"},
            "This invitation is for someone.else@example.test",
        ),
    ],
)
def test_unusable_invitations_are_refused_with_a_reason(acme, state, message):
    invitee = UserFactory.create(email="invitee@example.test")
    InvitationFactory.create(
        workspace=acme, token="tok-bad", **({"email": "invitee@example.test"} | state)
    )

    response = host_client("localhost", invitee).post("/invitations/tok-bad/")

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Membership.objects.filter(workspace=acme, user=invitee).exists()


def test_an_unknown_invitation_link_is_404(owner):
    assert host_client("localhost", owner).post("/invitations/nope/").status_code == 404


def test_accepting_needs_login(acme):
    InvitationFactory.create(workspace=acme, token="tok-anon", email="anon@example.test")

    response = host_client("localhost").post("/invitations/tok-anon/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/invitations/tok-anon/"


def test_an_invitation_works_once(acme):
    invitee = UserFactory.create(email="once@example.test")
    InvitationFactory.create(workspace=acme, token="tok-once", email="once@example.test")
    client = host_client("localhost", invitee)

    assert client.post("/invitations/tok-once/").status_code == 302
    second = client.post("/invitations/tok-once/")

    assert second.status_code == 400
    assert Membership.objects.filter(workspace=acme, user=invitee).count() == 1


def test_owner_withdraws_an_invitation(owner, acme):
    invitation = InvitationFactory.create(workspace=acme, token="tok-w", email="w@example.test")

    host_client("acme.localhost", owner).post(f"/settings/invitations/{invitation.pk}/revoke/")

    invitation.refresh_from_db()
    assert invitation.revoked_at is not None


def test_an_invitation_of_another_workspace_cannot_be_withdrawn_from_here(owner, globex):
    invitation = InvitationFactory.create(workspace=globex, token="tok-g", email="g@example.test")

    response = host_client("acme.localhost", owner).post(
        f"/settings/invitations/{invitation.pk}/revoke/"
    )

    assert response.status_code == 404
    invitation.refresh_from_db()
    assert invitation.revoked_at is None
