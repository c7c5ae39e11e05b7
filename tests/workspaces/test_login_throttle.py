"""Failed logins are limited per account and per address on every host (allauth's rate limits,
kept platform-wide), and staff log in through that same login: /admin/login/ checks nothing."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client, override_settings

from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rate_limits_on")]

HOSTS = ("localhost", "acme.localhost", "globex.localhost", "127.0.0.1", "www.localhost")


@pytest.fixture
def rate_limits_on():
    # allauth's defaults (tests turn them off): 5 failed logins per account per 5 min, 10 per
    # address per minute.
    with override_settings(ACCOUNT_RATE_LIMITS={}):
        yield


def _address() -> str:
    """An address of its own per test: the limits outlive a test's transaction in Redis."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def _login(host: str, email: str, password: str, address: str) -> bool:
    client = Client(HTTP_HOST=host, REMOTE_ADDR=address)
    response = client.post("/accounts/login/", {"login": email, "password": password})
    return response.status_code == 302 and "_auth_user_id" in client.session


def test_five_wrong_passwords_on_five_hosts_lock_the_account_everywhere():
    user = UserFactory.create(email=f"victim-{uuid.uuid4().hex[:8]}@example.test")
    for host in HOSTS:  # a new host (sign-up makes them freely) used to be five more guesses
        assert not _login(host, user.email, "wrong-password-0000", _address())

    # The right password, from yet another address and host: refused while locked.
    assert not _login("acme.localhost", user.email, PASSWORD, _address())


def test_case_and_spacing_of_the_address_name_one_account():
    user = UserFactory.create(email=f"victim-{uuid.uuid4().hex[:8]}@example.test")
    for variant in (user.email.upper(), user.email, user.email.title(), user.email, user.email):
        assert not _login("localhost", variant, "wrong-password-0000", _address())

    assert not _login("localhost", user.email, PASSWORD, _address())


def test_one_address_guessing_many_accounts_is_stopped_on_every_host():
    address = _address()
    for i in range(10):  # spread over hosts and accounts: one per-address count
        email = f"nobody-{uuid.uuid4().hex[:8]}@example.test"
        assert not _login(HOSTS[i % len(HOSTS)], email, "wrong-password-0000", address)
    user = UserFactory.create(email=f"real-{uuid.uuid4().hex[:8]}@example.test")

    assert not _login("globex.localhost", user.email, PASSWORD, address)
    assert _login("globex.localhost", user.email, PASSWORD, _address())


def test_a_successful_login_is_not_slowed():
    user = UserFactory.create(email=f"ok-{uuid.uuid4().hex[:8]}@example.test")

    assert _login("localhost", user.email, PASSWORD, _address())


def test_admin_login_sends_staff_to_the_product_login():
    client = Client(HTTP_HOST="localhost", REMOTE_ADDR=_address())

    response = client.get("/admin/login/?next=/admin/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"


def test_admin_login_checks_no_password():
    staff = UserFactory.create(
        email=f"staff-{uuid.uuid4().hex[:8]}@example.test", is_staff=True, is_superuser=True
    )
    client = Client(HTTP_HOST="localhost", REMOTE_ADDR=_address())
    for _ in range(30):
        response = client.post("/admin/login/", {"username": staff.email, "password": "wrong-1"})
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")

    # Even the right password logs nobody in there: only the throttled login does.
    client.post("/admin/login/", {"username": staff.email, "password": PASSWORD})
    assert "_auth_user_id" not in client.session


def test_staff_password_guessing_locks_after_five():
    staff = UserFactory.create(email=f"staff-{uuid.uuid4().hex[:8]}@example.test", is_staff=True)
    for _ in range(5):
        assert not _login("localhost", staff.email, "wrong-password-0000", _address())

    assert not _login("localhost", staff.email, PASSWORD, _address())


def test_logged_in_staff_reach_the_admin():
    staff = UserFactory.create(
        email=f"staff-{uuid.uuid4().hex[:8]}@example.test", is_staff=True, is_superuser=True
    )
    client = Client(HTTP_HOST="localhost", REMOTE_ADDR=_address())
    assert (
        client.post("/accounts/login/", {"login": staff.email, "password": PASSWORD}).status_code
        == 302
    )

    assert client.get("/admin/").status_code == 200
