"""Membership isolation: every URL of a workspace host, listed from its URLconf.

A logged-in non-member gets 404 on every one (GET and POST), an anonymous visitor is sent to
log in (except the login pages themselves), and a member gets past the gate.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from tests.conftest import host_client

pytestmark = pytest.mark.django_db

SAMPLE_VALUES = {
    "int": "1",
    "str": "sample",
    "slug": "sample",
    "uuid": "00000000-0000-0000-0000-000000000000",
    "path": "sample",
}


def _walk(patterns: list, prefix: str = "") -> list[str]:
    paths: list[str] = []
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            paths += _walk(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            paths.append(route)
    return paths


def _concrete(route: str) -> str:
    """A requestable path for a route: regex groups and converters get sample values."""
    route = re.sub(r"\(\?P<\w+>[^)]*\)", "sample", route)
    route = re.sub(
        r"<(?:(\w+):)?\w+>", lambda m: SAMPLE_VALUES.get(m.group(1) or "str", "sample"), route
    )
    return "/" + re.sub(r"\^|\$|\\Z", "", route)


LOGOUT = "/accounts/logout/"
WORKSPACE_PATHS = sorted(
    {_concrete(r) for r in _walk(get_resolver("aisaas.urls").url_patterns)} - {"/healthz"}
)


def test_the_urlconf_lists_the_workspace_pages():
    assert {"/", "/settings/", "/settings/invitations/", "/accounts/login/"} <= set(WORKSPACE_PATHS)


@pytest.mark.parametrize("path", [p for p in WORKSPACE_PATHS if p != LOGOUT])
def test_a_member_of_another_workspace_gets_404_everywhere(outsider, path):
    client = host_client("acme.localhost", outsider)

    assert client.get(path).status_code == 404
    assert (
        client.post(
            path, {"name": "Hijacked", "email": "x@example.test", "role": "owner"}
        ).status_code
        == 404
    )


@pytest.mark.parametrize("path", [p for p in WORKSPACE_PATHS if not p.startswith("/accounts/")])
def test_an_anonymous_visitor_is_sent_to_log_in(acme_client, path):
    response = acme_client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_an_outsider_may_log_out_and_learns_nothing(outsider):
    """Logging out is the one thing a non-member may do here: to switch accounts."""
    client = host_client("acme.localhost", outsider)

    page = client.get(LOGOUT)
    response = client.post(LOGOUT)

    assert b"Acme" not in page.content
    assert response.status_code == 302
    assert client.get("/").status_code == 302  # logged out: sent to log in


def test_the_outsiders_404_page_does_not_name_the_workspace(outsider):
    response = host_client("acme.localhost", outsider).get("/settings/")

    assert response.status_code == 404
    assert b"Acme" not in response.content


def test_the_login_page_does_not_name_the_workspace(acme_client):
    assert b"Acme" not in acme_client.get("/accounts/login/").content


def test_outsider_posts_change_nothing(outsider, acme, member):
    client = host_client("acme.localhost", outsider)
    target = acme.memberships.get(user=member)

    client.post("/settings/rename/", {"name": "Hijacked"})
    client.post(f"/settings/members/{target.pk}/role/", {"role": "owner"})
    client.post(f"/settings/members/{target.pk}/remove/")
    client.post("/settings/invitations/", {"email": "spy@example.test", "role": "owner"})

    acme.refresh_from_db()
    target.refresh_from_db()
    assert acme.name == "Acme"
    assert target.role == "member"
    assert not acme.invitations.exists()


def test_staff_without_membership_gets_404(acme):
    from tests.factories import UserFactory

    staff = UserFactory.create(email="staffer@aisaas.test", is_staff=True, is_superuser=True)

    assert host_client("acme.localhost", staff).get("/").status_code == 404


def test_a_member_gets_past_the_gate(member):
    assert host_client("acme.localhost", member).get("/settings/").status_code == 200


def test_a_globex_member_cannot_open_acme_through_the_public_dashboard(outsider):
    response = host_client("localhost", outsider).get("/workspaces/acme/open/")

    assert response.status_code == 404
