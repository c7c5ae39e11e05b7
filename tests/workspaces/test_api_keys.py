"""Workspace API keys: the services, the `apikey` command, the settings page and the admin.

A secret exists only in the answer that creates it; the database keeps its sha256 and prefix.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.common.errors import ApplicationError
from apps.workspaces.api_keys import (
    api_key_create,
    api_key_get_by_secret,
    api_key_hash,
    api_key_list,
    api_key_revoke,
    api_key_touch,
)
from apps.workspaces.models import ApiKey, Membership, Role, User, Workspace
from tests.conftest import host_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def apikey(*args: str) -> str:
    out = StringIO()
    call_command("apikey", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def make_admin(workspace: Workspace, user: User) -> None:
    Membership.objects.filter(workspace=workspace, user=user).update(role=Role.ADMIN)


# --- services -------------------------------------------------------------------------------


def test_create_returns_the_secret_and_stores_only_its_hash_and_prefix(acme, owner):
    api_key, secret = api_key_create(workspace=acme, name="  Support bot ", created_by=owner)

    assert secret.startswith("sk-aisaas-")
    assert len(secret) == len("sk-aisaas-") + 40
    row = ApiKey.objects.values().get(pk=api_key.pk)
    assert row["hashed"] == api_key_hash(secret)
    assert row["prefix"] == secret[:16]
    assert not any(secret in str(value) for value in row.values())
    assert (row["name"], row["scopes"], row["created_by_id"]) == (
        "Support bot",
        ["chat", "embeddings"],
        owner.pk,
    )
    assert row["rate_limit_per_minute"] is None
    assert (row["expires_at"], row["revoked_at"], row["last_used_at"]) == (None, None, None)


def test_every_key_gets_its_own_secret_and_prefix(acme):
    created = [api_key_create(workspace=acme, name=f"k{i}") for i in range(5)]

    assert len({secret for _, secret in created}) == 5
    assert len({key.prefix for key, _ in created}) == 5


def test_scopes_are_kept_in_canonical_order_without_duplicates(acme):
    api_key, _ = api_key_create(workspace=acme, name="k", scopes=["embeddings", "chat", "chat"])

    assert api_key.scopes == ["chat", "embeddings"]


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"name": "   "}, "name", "name"),
        ({"name": "x" * 101}, "name", "100"),
        ({"scopes": []}, "scopes", "at least one scope"),
        ({"scopes": ["chat", "admin"]}, "scopes", "admin"),
        ({"scopes": "chatty"}, "scopes", "chatty"),
        ({"expires_at": datetime(2020, 1, 1, tzinfo=UTC)}, "expires_at", "future"),
        ({"rate_limit_per_minute": 0}, "rate_limit_per_minute", "between 1 and 100,000"),
        ({"rate_limit_per_minute": 100_001}, "rate_limit_per_minute", "between 1 and 100,000"),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(acme, kwargs, field, words):
    with pytest.raises(ApplicationError) as raised:
        api_key_create(workspace=acme, **{"name": "ok", **kwargs})

    assert raised.value.field == field
    assert words in raised.value.message
    assert not ApiKey.objects.exists()


def test_the_limits_are_inclusive(acme):
    low, _ = api_key_create(workspace=acme, name="low", rate_limit_per_minute=1)
    high, _ = api_key_create(workspace=acme, name="high", rate_limit_per_minute=100_000)

    assert (low.effective_rate_limit, high.effective_rate_limit) == (1, 100_000)


@override_settings(API_KEY_DEFAULT_RATE_LIMIT=42)
def test_a_key_without_a_limit_uses_the_default(acme):
    api_key, _ = api_key_create(workspace=acme, name="k")

    assert api_key.effective_rate_limit == 42


def test_revoke_is_idempotent_and_keeps_the_first_time(acme):
    api_key, _ = api_key_create(workspace=acme, name="k")

    first = api_key_revoke(api_key=api_key).revoked_at
    again = api_key_revoke(api_key=ApiKey.objects.get(pk=api_key.pk)).revoked_at

    assert first is not None
    assert again == first
    assert api_key.status == "revoked"


def test_status_tells_active_expired_and_revoked_apart(acme):
    api_key_create(workspace=acme, name="a")
    expired, _ = api_key_create(
        workspace=acme, name="e", expires_at=timezone.now() + timedelta(minutes=1)
    )
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked, _ = api_key_create(workspace=acme, name="r")
    api_key_revoke(api_key=revoked)

    statuses = {k.name: k.status for k in api_key_list(workspace=acme)}

    assert statuses == {"a": "active", "e": "expired", "r": "revoked"}


def test_list_shows_one_workspaces_keys_newest_first(acme, globex):
    older, _ = api_key_create(workspace=acme, name="older")
    api_key_create(workspace=acme, name="newer")
    api_key_revoke(api_key=older)
    api_key_create(workspace=globex, name="theirs")

    assert [k.name for k in api_key_list(workspace=acme)] == ["newer", "older"]


def test_the_secret_finds_its_key_and_workspace_in_one_query(acme):
    api_key, secret = api_key_create(workspace=acme, name="k")

    with CaptureQueriesContext(connection) as queries:
        found = api_key_get_by_secret(secret)
        assert found is not None
        assert found.workspace.slug == "acme"

    # django-tenants may set the search_path first; that is not a lookup.
    lookups = [q["sql"] for q in queries if not q["sql"].startswith("SET search_path")]
    assert len(lookups) == 1
    assert "ORDER BY" not in lookups[0]
    assert found.pk == api_key.pk


def test_revoked_and_expired_keys_are_still_found_for_callers_to_refuse(acme):
    api_key, secret = api_key_create(workspace=acme, name="k")
    api_key_revoke(api_key=api_key)

    found = api_key_get_by_secret(secret)

    assert found is not None
    assert found.status == "revoked"


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "sk-aisaas-",
        "sk-aisaas-" + "a" * 40,  # well-formed, unknown
        "sk-aisaas-" + "a" * 39,
        "sk-aisaas-" + "a" * 41,
        "sk-other-" + "a" * 41,
        "sk-aisaas-" + "a" * 39 + "!",
        "Bearer sk-aisaas-" + "a" * 40,
    ],
)
def test_unknown_or_malformed_secrets_find_nothing(acme, secret):
    api_key_create(workspace=acme, name="k")

    assert api_key_get_by_secret(secret) is None


def test_a_secret_with_a_changed_character_finds_nothing(acme):
    _, secret = api_key_create(workspace=acme, name="k")
    changed = secret[:-1] + ("A" if secret[-1] != "A" else "B")

    assert api_key_get_by_secret(changed) is None


def test_touch_records_use_at_most_once_a_minute(acme):
    api_key, _ = api_key_create(workspace=acme, name="k")
    start = timezone.now()

    def last_used() -> datetime | None:
        return ApiKey.objects.values_list("last_used_at", flat=True).get(pk=api_key.pk)

    api_key_touch(api_key_id=api_key.pk, now=start)
    assert last_used() == start

    api_key_touch(api_key_id=api_key.pk, now=start + timedelta(seconds=59))
    assert last_used() == start

    api_key_touch(api_key_id=api_key.pk, now=start + timedelta(seconds=61))
    assert last_used() == start + timedelta(seconds=61)


def test_touch_without_now_uses_the_clock(acme):
    api_key, _ = api_key_create(workspace=acme, name="k")

    api_key_touch(api_key_id=api_key.pk)

    api_key.refresh_from_db()
    assert api_key.last_used_at is not None
    assert timezone.now() - api_key.last_used_at < timedelta(seconds=5)


# --- the apikey command ---------------------------------------------------------------------


def test_cli_create_json_prints_one_object_whose_key_authenticates(acme):
    payload = json.loads(apikey("create", "--workspace", "acme", "--name", "ci", "--json"))

    assert set(payload) == {
        "key",
        "prefix",
        "id",
        "workspace",
        "scopes",
        "expires_at",
        "allowed_origins",
    }
    assert payload["allowed_origins"] == []  # no browser origin unless chosen
    assert payload["workspace"] == "acme"
    assert payload["scopes"] == ["chat", "embeddings"]
    assert payload["expires_at"] is None
    assert payload["key"].startswith(payload["prefix"])
    found = api_key_get_by_secret(payload["key"])
    assert found is not None
    assert (found.pk, found.workspace_id, found.created_by) == (payload["id"], acme.pk, None)


def test_cli_create_with_scopes_expiry_and_rate_limit(acme):
    before = timezone.now()

    payload = json.loads(
        apikey(
            "create",
            "--workspace",
            "acme",
            "--name",
            "embedder",
            "--scopes",
            "embeddings",
            "--expires-in-days",
            "30",
            "--rate-limit",
            "60",
            "--json",
        )
    )

    api_key = ApiKey.objects.get(pk=payload["id"])
    assert payload["scopes"] == api_key.scopes == ["embeddings"]
    assert api_key.rate_limit_per_minute == 60
    assert api_key.expires_at is not None
    assert datetime.fromisoformat(payload["expires_at"]) == api_key.expires_at
    assert timedelta(days=30) <= api_key.expires_at - before < timedelta(days=30, minutes=1)


def test_cli_create_prints_the_secret_alone_on_stdout(acme):
    secret = apikey("create", "--workspace", "acme", "--name", "plain").strip()

    assert api_key_get_by_secret(secret) is not None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--workspace", "nope", "--name", "k"], "No workspace “nope”"),
        (["--workspace", "public", "--name", "k"], "No workspace “public”"),
        (["--workspace", "acme", "--name", " "], "name"),
        (["--workspace", "acme", "--name", "k", "--scopes", "chat,admin"], "admin"),
        (["--workspace", "acme", "--name", "k", "--scopes", ","], "scope"),
        (["--workspace", "acme", "--name", "k", "--rate-limit", "0"], "between 1 and"),
        (["--workspace", "acme", "--name", "k", "--expires-in-days", "0"], "at least 1"),
    ],
)
def test_cli_create_refuses_bad_input_and_creates_nothing(acme, args, words):
    with pytest.raises(CommandError, match=words):
        apikey("create", *args)

    assert not ApiKey.objects.exists()


def test_cli_list_never_shows_secrets_or_hashes(acme, globex):
    _, secret = api_key_create(workspace=acme, name="listed")
    api_key_create(workspace=globex, name="not listed")

    as_json = apikey("list", "--workspace", "acme", "--json")
    as_table = apikey("list", "--workspace", "acme")

    rows = json.loads(as_json)
    assert [r["name"] for r in rows] == ["listed"]
    assert rows[0]["prefix"] == secret[:16]
    assert rows[0]["status"] == "active"
    hashed = api_key_hash(secret)
    for output in (as_json, as_table):
        assert secret not in output
        assert secret[16:26] not in output
        assert hashed not in output
    assert "listed" in as_table
    assert "not listed" not in as_table


def test_cli_list_of_a_workspace_without_keys(acme):
    assert "No API keys" in apikey("list", "--workspace", "acme")
    assert json.loads(apikey("list", "--workspace", "acme", "--json")) == []


def test_cli_revokes_by_prefix_and_by_id(acme):
    _, secret = api_key_create(workspace=acme, name="p")
    by_id, _ = api_key_create(workspace=acme, name="i")

    out = apikey("revoke", "--workspace", "acme", "--prefix", secret[:16])
    apikey("revoke", "--workspace", "acme", "--id", str(by_id.pk))

    assert "revoked" in out
    assert {k.name: k.status for k in api_key_list(workspace=acme)} == {
        "p": "revoked",
        "i": "revoked",
    }


def test_cli_revoking_twice_says_so(acme):
    api_key, _ = api_key_create(workspace=acme, name="k")
    apikey("revoke", "--workspace", "acme", "--id", str(api_key.pk))

    assert "already revoked" in apikey("revoke", "--workspace", "acme", "--id", str(api_key.pk))


def test_cli_cannot_revoke_another_workspaces_key(acme, globex):
    theirs, secret = api_key_create(workspace=globex, name="theirs")

    with pytest.raises(CommandError, match=r"No API key with prefix .* in workspace “acme”"):
        apikey("revoke", "--workspace", "acme", "--prefix", secret[:16])
    with pytest.raises(CommandError, match="No API key with id"):
        apikey("revoke", "--workspace", "acme", "--id", str(theirs.pk))

    theirs.refresh_from_db()
    assert theirs.status == "active"


@pytest.mark.parametrize(
    "args",
    [
        ["--workspace", "acme", "--prefix", "sk-aisaas-zzzzzz"],
        ["--workspace", "nope", "--id", "1"],
        ["--workspace", "acme"],  # neither --prefix nor --id
    ],
)
def test_cli_revoke_errors(acme, args):
    with pytest.raises(CommandError):
        apikey("revoke", *args)


# --- the settings page ----------------------------------------------------------------------

FORM = {"name": "Support bot", "scopes": ["chat", "embeddings"]}


def test_owner_sees_the_api_keys_section(owner, acme):
    api_key_create(workspace=acme, name="existing", created_by=owner)

    response = host_client("acme.localhost", owner).get("/settings/")

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="api-keys"' in content
    assert "existing" in content
    assert [k.name for k in response.context["api_keys"]] == ["existing"]


def test_owner_creates_a_key_and_sees_its_secret_once(owner, acme):
    client = host_client("acme.localhost", owner)

    response = client.post(
        "/settings/api-keys/",
        {**FORM, "expires_at": "2099-05-01", "rate_limit_per_minute": "120"},
    )

    assert response.status_code == 201
    api_key = ApiKey.objects.get(workspace=acme)
    secret = response.context["new_api_key_secret"]
    assert secret in response.content.decode()
    assert api_key.hashed == api_key_hash(secret)
    assert api_key.created_by == owner
    assert api_key.scopes == ["chat", "embeddings"]
    assert api_key.rate_limit_per_minute == 120
    # "Valid until 2099-05-01" means through the end of that day, UTC.
    assert api_key.expires_at == datetime(2099, 5, 2, tzinfo=UTC)
    assert "no-store" in response["Cache-Control"]
    assert response["HX-Replace-Url"] == "/settings/"

    reloaded = client.get("/settings/").content.decode()
    assert secret not in reloaded
    assert api_key.prefix in reloaded


def test_a_key_with_one_scope_and_no_expiry(owner, acme):
    host_client("acme.localhost", owner).post(
        "/settings/api-keys/", {"name": "chat only", "scopes": ["chat"]}
    )

    api_key = ApiKey.objects.get(workspace=acme)
    assert (api_key.scopes, api_key.expires_at, api_key.rate_limit_per_minute) == (
        ["chat"],
        None,
        None,
    )


def test_an_admin_manages_api_keys_too(member, acme):
    make_admin(acme, member)

    response = host_client("acme.localhost", member).post("/settings/api-keys/", FORM)

    assert response.status_code == 201
    assert ApiKey.objects.get(workspace=acme).created_by == member


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "", "scopes": ["chat"]}, "name"),
        ({"name": "   ", "scopes": ["chat"]}, "name"),
        ({"name": "k"}, "scopes"),
        ({"name": "k", "scopes": ["admin"]}, "scopes"),
        ({**FORM, "expires_at": "2020-01-01"}, "expires_at"),
        ({**FORM, "expires_at": "yesterday"}, "expires_at"),
        ({**FORM, "expires_at": "9999-12-31"}, "expires_at"),
        ({**FORM, "rate_limit_per_minute": "0"}, "rate_limit_per_minute"),
        ({**FORM, "rate_limit_per_minute": "-5"}, "rate_limit_per_minute"),
        ({**FORM, "rate_limit_per_minute": "100001"}, "rate_limit_per_minute"),
        ({**FORM, "rate_limit_per_minute": "many"}, "rate_limit_per_minute"),
    ],
)
def test_bad_input_is_a_form_error_and_creates_nothing(owner, acme, data, field):
    response = host_client("acme.localhost", owner).post("/settings/api-keys/", data)

    assert response.status_code == 400
    assert response.context["api_key_form"].errors[field]
    assert "new_api_key_secret" not in response.context
    assert not ApiKey.objects.exists()


def test_past_expiry_and_zero_rate_limit_messages(owner):
    client = host_client("acme.localhost", owner)

    past = client.post("/settings/api-keys/", {**FORM, "expires_at": "2020-01-01"})
    zero = client.post("/settings/api-keys/", {**FORM, "rate_limit_per_minute": "0"})

    assert "must be in the future" in past.content.decode()
    assert "between 1 and 100,000" in zero.content.decode()


def test_owner_revokes_a_key(owner, acme):
    api_key, secret = api_key_create(workspace=acme, name="k")

    response = host_client("acme.localhost", owner).post(
        f"/settings/api-keys/{api_key.pk}/revoke/", follow=True
    )

    api_key.refresh_from_db()
    assert api_key.status == "revoked"
    assert "revoked" in response.content.decode()
    assert secret not in response.content.decode()


def test_revoking_needs_a_post(owner, acme):
    api_key, _ = api_key_create(workspace=acme, name="k")

    response = host_client("acme.localhost", owner).get(f"/settings/api-keys/{api_key.pk}/revoke/")

    assert response.status_code == 405
    api_key.refresh_from_db()
    assert api_key.status == "active"


def test_a_key_of_another_workspace_is_404_here(owner, globex):
    theirs, _ = api_key_create(workspace=globex, name="theirs")

    response = host_client("acme.localhost", owner).post(f"/settings/api-keys/{theirs.pk}/revoke/")

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "active"


def test_a_member_neither_sees_nor_uses_api_keys(member, acme):
    existing, _ = api_key_create(workspace=acme, name="existing key")
    client = host_client("acme.localhost", member)

    page = client.get("/settings/")
    create = client.post("/settings/api-keys/", FORM)
    revoke = client.post(f"/settings/api-keys/{existing.pk}/revoke/")

    assert page.status_code == 200
    assert "api_keys" not in page.context
    assert 'id="api-keys"' not in page.content.decode()
    assert "existing key" not in page.content.decode()
    assert existing.prefix not in page.content.decode()
    assert create.status_code == 403
    assert revoke.status_code == 403
    assert "existing key" not in create.content.decode()
    assert list(ApiKey.objects.values_list("name", flat=True)) == ["existing key"]
    existing.refresh_from_db()
    assert existing.status == "active"


def test_an_outsider_gets_404_and_changes_nothing(outsider, acme):
    existing, _ = api_key_create(workspace=acme, name="existing")
    client = host_client("acme.localhost", outsider)

    assert client.post("/settings/api-keys/", FORM).status_code == 404
    assert client.post(f"/settings/api-keys/{existing.pk}/revoke/").status_code == 404

    existing.refresh_from_db()
    assert existing.status == "active"
    assert ApiKey.objects.count() == 1


def test_an_anonymous_visitor_is_sent_to_log_in(acme_client, acme):
    response = acme_client.post("/settings/api-keys/", FORM)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not ApiKey.objects.exists()


# --- staff admin ----------------------------------------------------------------------------


@pytest.fixture
def staff():
    user = UserFactory.create(email="staff@platform.test", is_staff=True, is_superuser=True)
    return host_client("localhost", user)


def test_admin_shows_the_prefix_never_the_hash(staff, acme):
    api_key, secret = api_key_create(workspace=acme, name="k")

    listing = staff.get("/admin/workspaces/apikey/").content.decode()
    detail = staff.get(f"/admin/workspaces/apikey/{api_key.pk}/change/").content.decode()

    for page in (listing, detail):
        assert api_key.prefix in page
        assert api_key.hashed not in page
        assert secret not in page
    assert staff.get("/admin/workspaces/apikey/add/").status_code == 403


def test_admin_revokes_selected_keys(staff, acme):
    api_key, _ = api_key_create(workspace=acme, name="k")

    staff.post(
        "/admin/workspaces/apikey/",
        {"action": "revoke", "_selected_action": [str(api_key.pk)]},
    )

    api_key.refresh_from_db()
    assert api_key.status == "revoked"
