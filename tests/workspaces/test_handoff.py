"""The login handoff from the public host to a workspace host: signed, scoped, single-use."""

from __future__ import annotations

import pytest

from apps.workspaces.handoff import handoff_token
from tests.conftest import host_client

pytestmark = pytest.mark.django_db


def test_a_handoff_link_logs_the_member_in_on_the_workspace_host(owner, acme):
    client = host_client("acme.localhost")

    response = client.get(f"/accounts/handoff/{handoff_token(user=owner, workspace=acme)}/")

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").context["user"] == owner


def test_a_handoff_link_works_once(owner, acme):
    token = handoff_token(user=owner, workspace=acme)
    host_client("acme.localhost").get(f"/accounts/handoff/{token}/")
    replay = host_client("acme.localhost")

    response = replay.get(f"/accounts/handoff/{token}/")

    assert response["Location"] == "/accounts/login/"
    assert replay.get("/").status_code == 302


def test_a_handoff_link_for_another_workspace_is_refused(outsider, globex):
    token = handoff_token(user=outsider, workspace=globex)
    client = host_client("acme.localhost")

    response = client.get(f"/accounts/handoff/{token}/")

    assert response["Location"] == "/accounts/login/"


def test_a_tampered_link_is_refused(owner, acme):
    token = handoff_token(user=owner, workspace=acme)

    response = host_client("acme.localhost").get(f"/accounts/handoff/{token[:-2]}xx/")

    assert response["Location"] == "/accounts/login/"
