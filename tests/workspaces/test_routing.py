"""Host routing: public host, workspace hosts, unknown hosts."""

from __future__ import annotations

import pytest

from tests.conftest import host_client

pytestmark = pytest.mark.django_db


def test_public_host_serves_landing_page(public_client):
    response = public_client.get("/")

    assert response.status_code == 200
    assert b"Create your workspace" in response.content


def test_workspace_host_serves_its_workspace_to_a_member(owner):
    response = host_client("acme.localhost", owner).get("/")

    assert response.status_code == 200
    assert response.context["workspace"].slug == "acme"
    assert b"Acme" in response.content


def test_each_workspace_host_shows_its_own_workspace(owner, outsider):
    acme_page = host_client("acme.localhost", owner).get("/")
    globex_page = host_client("globex.localhost", outsider).get("/")

    assert acme_page.context["workspace"].slug == "acme"
    assert globex_page.context["workspace"].slug == "globex"


def test_unknown_workspace_host_answers_404(owner):
    assert host_client("nope.localhost", owner).get("/").status_code == 404


def test_foreign_host_is_refused():
    assert host_client("evil.example.com").get("/").status_code == 400


def test_admin_lives_on_the_public_host_only(owner):
    assert host_client("localhost").get("/admin/").status_code == 302
    assert host_client("acme.localhost", owner).get("/admin/").status_code == 404
