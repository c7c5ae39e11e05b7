"""Logging in and signing up in a real browser, on the public host and on workspace hosts."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from apps.workspaces.models import User, Workspace
from tests.asgi_server import AsgiServer, run_committed
from tests.factories import PASSWORD

# django_db: see tests/e2e/conftest.py; the browser's rows are committed by the server.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

STRONG = "violet-harbour-lantern-42"
SLUG_CHARACTERS_ERROR = (
    "Use lowercase letters, digits and single hyphens, starting and ending with a letter or digit."
)


def _log_in(page: Page, email: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()


def test_owner_logs_in_on_the_workspace_host(live_server_asgi: AsgiServer, page: Page):
    page.goto(live_server_asgi.url(workspace="acme"))
    expect(page).to_have_url(live_server_asgi.url("/accounts/login/?next=/", workspace="acme"))

    _log_in(page, "owner@acme.test")

    expect(page).to_have_url(live_server_asgi.url(workspace="acme"))
    expect(page.get_by_test_id("workspace-name")).to_have_text("Acme")
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme")
    expect(page.get_by_text("You are owner of this workspace.")).to_be_visible()


def test_owner_logs_in_on_the_public_host_and_opens_acme(live_server_asgi: AsgiServer, page: Page):
    page.goto(live_server_asgi.url("/accounts/login/"))
    _log_in(page, "owner@acme.test")
    expect(page.get_by_role("heading", name="Your workspaces")).to_be_visible()

    page.get_by_test_id("workspace-list").get_by_role("link", name="Acme").click()

    expect(page).to_have_url(live_server_asgi.url(workspace="acme"))
    expect(page.get_by_test_id("workspace-name")).to_have_text("Acme")
    expect(page.get_by_role("banner")).to_contain_text("owner@acme.test")


def test_outsider_gets_404_on_the_workspace_host(live_server_asgi: AsgiServer, page: Page):
    page.goto(live_server_asgi.url(workspace="acme"))

    _log_in(page, "outsider@globex.test")

    expect(page).to_have_url(live_server_asgi.url(workspace="acme"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    response = page.goto(live_server_asgi.url("/settings/", workspace="acme"))
    assert response is not None
    assert response.status == 404


def test_outsiders_404_page_does_not_name_the_workspace(live_server_asgi: AsgiServer, page: Page):
    page.goto(live_server_asgi.url("/settings/", workspace="acme"))
    _log_in(page, "outsider@globex.test")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")

    assert page.get_by_text("Acme").count() == 0
    assert page.get_by_role("link", name="Settings").count() == 0


@dataclass(frozen=True)
class NewAccount:
    email: str
    slug: str


@pytest.fixture
def new_account() -> Iterator[NewAccount]:
    """A unique email and slug; whatever the server created for them is removed afterwards."""
    account = NewAccount(
        email=f"e2e-{secrets.token_hex(4)}@example.test", slug=f"e2e-{secrets.token_hex(4)}"
    )
    yield account

    def remove() -> None:
        for workspace in Workspace.objects.filter(slug=account.slug):
            workspace.delete(force_drop=True)  # type: ignore[call-arg]  # django-tenants
        User.objects.filter(email=account.email).delete()

    run_committed(remove)


def test_sign_up_with_a_first_workspace(
    live_server_asgi: AsgiServer, page: Page, new_account: NewAccount
):
    page.goto(live_server_asgi.url())
    page.get_by_role("link", name="Create your workspace").click()

    def fill_form(slug: str) -> None:
        page.get_by_label("Email").fill(new_account.email)
        page.get_by_label("Workspace name").fill("E2E Corp")
        page.get_by_label("Workspace address").fill(slug)
        page.get_by_label("Password:", exact=True).fill(STRONG)
        page.get_by_label("Password (again):", exact=True).fill(STRONG)
        page.get_by_role("button", name="Sign Up").click()

    fill_form("E2E Corp")

    # The error is tied to the field (aria-describedby), after its help text.
    expect(page.get_by_label("Workspace address")).to_have_accessible_description(
        re.compile(re.escape(SLUG_CHARACTERS_ERROR) + "$")
    )
    assert not run_committed(lambda: User.objects.filter(email=new_account.email).exists())

    fill_form(new_account.slug)

    # Sign-up migrates the new workspace's schema: seconds, more on a loaded CI machine.
    expect(page.get_by_role("heading", name="Your workspaces")).to_be_visible(timeout=60_000)
    page.get_by_test_id("workspace-list").get_by_role("link", name="E2E Corp").click()
    expect(page).to_have_url(live_server_asgi.url(workspace=new_account.slug))
    expect(page.get_by_test_id("workspace-name")).to_have_text("E2E Corp")
