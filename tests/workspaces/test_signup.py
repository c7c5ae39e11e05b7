"""Sign-up and workspace creation: schema, domain and owner membership together, or nothing."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_exists

from apps.common.errors import ApplicationError
from apps.common.tenancy import use_public_schema
from apps.workspaces.models import Domain, Membership, User, Workspace
from apps.workspaces.services import workspace_create
from tests.conftest import host_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

STRONG = "violet-harbour-lantern-42"


def _signup(client, **overrides):
    data = {
        "email": "new@example.test",
        "password1": STRONG,
        "password2": STRONG,
        "workspace_name": "Initech",
        "workspace_slug": "initech",
    } | overrides
    return client.post("/accounts/signup/", data)


def _nothing_created(email: str = "new@example.test", slug: str = "initech") -> bool:
    return (
        not User.objects.filter(email=email).exists()
        and not Workspace.objects.filter(slug=slug).exists()
        and not schema_exists(slug)
    )


def test_signup_creates_user_workspace_schema_domain_and_owner_membership(public_client):
    response = _signup(public_client)

    assert response.status_code == 302
    user = User.objects.get(email="new@example.test")
    workspace = Workspace.objects.get(slug="initech")
    assert schema_exists("initech")
    assert Domain.objects.filter(
        tenant=workspace, domain="initech.localhost", is_primary=True
    ).exists()
    assert Membership.objects.get(workspace=workspace, user=user).role == "owner"


def test_signup_without_a_workspace_creates_only_the_user(public_client):
    response = _signup(
        public_client, email="invitee@example.test", workspace_name="", workspace_slug=""
    )

    assert response.status_code == 302
    assert User.objects.filter(email="invitee@example.test").exists()
    assert not Membership.objects.filter(user__email="invitee@example.test").exists()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"email": "owner@acme.test"}, "email", "already registered"),
        ({"password1": "password", "password2": "password"}, "password1", "too common"),
        ({"password1": "short1", "password2": "short1"}, "password1", "too short"),
        ({"password2": STRONG + "x"}, "password2", "same password"),
        (
            {"workspace_slug": "Init_Tech"},
            "workspace_slug",
            "lowercase letters, digits and single hyphens",
        ),
        ({"workspace_slug": "ab"}, "workspace_slug", "3 to 40 characters"),
        ({"workspace_slug": "a" * 41}, "workspace_slug", "3 to 40 characters"),
        ({"workspace_slug": "admin"}, "workspace_slug", "reserved"),
        ({"workspace_slug": "www"}, "workspace_slug", "reserved"),
        ({"workspace_slug": "acme"}, "workspace_slug", "taken"),
        ({"workspace_slug": "-initech"}, "workspace_slug", "starting and ending"),
        ({"workspace_name": ""}, "workspace_name", "Give the workspace a name"),
        ({"workspace_slug": ""}, "workspace_slug", "Choose an address"),
    ],
)
def test_bad_signup_shows_a_precise_error_and_creates_nothing(
    public_client, overrides, field, message
):
    response = _signup(public_client, **overrides)

    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors.get(field, []))
    assert message.lower() in errors.lower(), response.context["form"].errors
    email = overrides.get("email", "new@example.test")
    assert _nothing_created(email if email != "owner@acme.test" else "new@example.test")


def test_signup_on_a_workspace_host_is_sent_to_the_public_host(acme_client):
    response = acme_client.post(
        "/accounts/signup/", {"email": "x@example.test", "password1": STRONG, "password2": STRONG}
    )

    assert response.status_code == 302
    assert response["Location"] == "http://localhost:8000/accounts/signup/"
    assert not User.objects.filter(email="x@example.test").exists()


def test_logged_in_user_creates_a_workspace_and_is_sent_to_it(member):
    client = host_client("localhost", member)

    response = client.post("/workspaces/new/", {"name": "Side project", "slug": "side-project"})

    assert response.status_code == 302
    assert response["Location"] == "/workspaces/side-project/open/"
    workspace = Workspace.objects.get(slug="side-project")
    assert workspace.schema_name == "side_project"
    assert schema_exists("side_project")
    assert Membership.objects.get(workspace=workspace, user=member).role == "owner"
    handoff = client.get(response["Location"])
    assert handoff["Location"].startswith("http://side-project.localhost:8000/accounts/handoff/")


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("acme", "taken"),
        ("api", "reserved"),
        ("has space", "lowercase"),
        ("UPPER", "lowercase"),
        ("", "required"),
    ],
)
def test_create_workspace_form_errors(member, slug, message):
    client = host_client("localhost", member)

    response = client.post("/workspaces/new/", {"name": "X", "slug": slug})

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors["slug"]).lower()
    assert Workspace.objects.count() == 2


def test_create_workspace_needs_login(public_client):
    response = public_client.get("/workspaces/new/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_failure_after_the_schema_exists_leaves_nothing_behind(monkeypatch):
    """Creation is one transaction: if the last step fails, schema, rows and membership vanish."""
    owner = UserFactory.create(email="unlucky@example.test")

    def explode(*args, **kwargs):
        assert schema_exists("doomed"), "the schema was created before the failure"
        raise RuntimeError("migrations failed half-way")

    original = Workspace.create_schema

    def create_then_explode(self, *args, **kwargs):
        original(self, *args, **kwargs)
        explode()

    monkeypatch.setattr(Workspace, "create_schema", create_then_explode)

    with pytest.raises(RuntimeError):
        workspace_create(name="Doomed", slug="doomed", owner=owner)

    use_public_schema()
    assert not schema_exists("doomed")
    assert not Workspace.objects.filter(slug="doomed").exists()
    assert not Domain.objects.filter(domain="doomed.localhost").exists()
    assert not Membership.objects.filter(user=owner).exists()


def test_service_refuses_a_duplicate_slug_with_a_field_error(owner):
    with pytest.raises(ApplicationError) as caught:
        workspace_create(name="Acme again", slug="acme", owner=owner)

    assert caught.value.field == "slug"
    assert "taken" in caught.value.message
