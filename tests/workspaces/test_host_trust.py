"""The Host and Origin headers are not trusted beyond the host served: account mail links are
built on SITE_URL, and a form is accepted only from the exact origin of the host it posts to."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from apps.workspaces.models import User

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("host", ["globex.localhost", "acme.localhost:8000", "127.0.0.1"])
def test_a_password_reset_link_is_built_on_the_site_url_whatever_the_host(owner, host):
    client = Client(HTTP_HOST=host)

    response = client.post("/accounts/password/reset/", {"email": owner.email})

    assert response.status_code == 302
    (sent,) = mail.outbox
    links = re.findall(r"https?://[^\s]+", str(sent.body))
    assert links, sent.body
    assert all(link.startswith("http://localhost:8000/") for link in links), links
    assert host.split(":")[0] not in sent.body.replace("localhost:8000", "")


def test_the_unknown_account_mail_names_the_site_url_too():
    Client(HTTP_HOST="globex.localhost").post(
        "/accounts/password/reset/", {"email": "nobody-here@example.test"}
    )

    (sent,) = mail.outbox
    assert "globex" not in sent.body
    assert "http://localhost:8000/accounts/" in sent.body


def _logged_in_with_token(user: User, host: str) -> tuple[Client, str]:
    client = Client(HTTP_HOST=host, enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/chat/")
    return client, client.cookies["csrftoken"].value


@pytest.mark.parametrize(
    "origin",
    [
        "http://globex.localhost:8000",
        "http://localhost:8000",
        "https://acme.localhost:8000",
        "http://evil.localhost:8000",
    ],
    ids=["other-workspace", "public-host", "other-scheme", "unknown-subdomain"],
)
def test_a_valid_token_from_another_origin_is_refused(member, origin):
    client, token = _logged_in_with_token(member, "acme.localhost:8000")

    response = client.post("/accounts/logout/", {"csrfmiddlewaretoken": token}, HTTP_ORIGIN=origin)

    assert response.status_code == 403
    assert "_auth_user_id" in client.session


def test_the_same_origin_is_accepted(member):
    client, token = _logged_in_with_token(member, "acme.localhost:8000")

    response = client.post(
        "/accounts/logout/",
        {"csrfmiddlewaretoken": token},
        HTTP_ORIGIN="http://acme.localhost:8000",
    )

    assert response.status_code == 302
    assert "_auth_user_id" not in client.session
