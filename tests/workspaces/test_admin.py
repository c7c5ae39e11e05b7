"""Staff admin for a workspace's AI: settings (model overrides, limits) and BYOK keys, whose
key field is write-only — encrypted by the service, shown by its last 4 characters only."""

from __future__ import annotations

import secrets
from html.parser import HTMLParser

import pytest
from django.test import Client

from apps.common import crypto
from apps.workspaces.ai import ai_settings_get, provider_key_set
from apps.workspaces.models import AISettings, ProviderKey, User, Workspace
from tests.conftest import host_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

KEYS = "provider_keys"  # the inline formsets' prefixes
AI = "ai_settings"


def new_key() -> str:
    return "sk-admin-" + secrets.token_hex(16)


@pytest.fixture
def staff() -> Client:
    user = UserFactory.create(email="staff@platform.test", is_staff=True, is_superuser=True)
    return host_client("localhost", user)


def change_url(workspace: Workspace) -> str:
    return f"/admin/workspaces/workspace/{workspace.pk}/change/"


class _FormValues(HTMLParser):
    """What a browser would submit from the page's forms: inputs, selects, textareas."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._select: str | None = None
        self._first_option: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name", "")
        if tag == "input" and name and "__prefix__" not in name:
            kind = a.get("type", "text")
            if kind in ("submit", "button", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.values[name] = a.get("value", "on" if kind == "checkbox" else "")
        elif tag == "select" and "__prefix__" not in name:
            self._select, self._first_option = name, None
        elif tag == "option" and self._select:
            if self._first_option is None:
                self._first_option = a.get("value", "")
                self.values.setdefault(self._select, self._first_option)
            if "selected" in a:
                self.values[self._select] = a.get("value", "")
        elif tag == "textarea" and "__prefix__" not in name:
            self._textarea = name
            self.values[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data.removeprefix("\n")


def form_values(client: Client, url: str) -> dict[str, str]:
    page = client.get(url)
    assert page.status_code == 200
    parser = _FormValues()
    parser.feed(page.content.decode())
    return parser.values


def add_inline_row(values: dict[str, str], prefix: str, **fields: str) -> None:
    index = int(values[f"{prefix}-TOTAL_FORMS"])
    values[f"{prefix}-TOTAL_FORMS"] = str(index + 1)
    values.update({f"{prefix}-{index}-{name}": value for name, value in fields.items()})


def test_the_workspace_page_shows_keys_by_their_last_four_only(
    staff: Client, acme: Workspace
) -> None:
    # given a stored key
    key = new_key()
    row = provider_key_set(workspace=acme, provider="openai", key=key)

    # when staff open the workspace
    page = staff.get(change_url(acme))

    # then the AI settings and the key's last four show; the key and its ciphertext never do
    html = page.content.decode()
    assert page.status_code == 200
    assert "AI settings" in html
    assert f"…{key[-4:]}" in html
    assert key not in html
    assert row.encrypted_key not in html
    assert f'type="password" name="{KEYS}-0-key"' in html


def test_a_key_added_on_the_workspace_page_is_encrypted_by_the_service(
    staff: Client, acme: Workspace
) -> None:
    # given the workspace page, with a key typed into a new row
    key = new_key()
    values = form_values(staff, change_url(acme))
    add_inline_row(values, KEYS, provider="anthropic", key=key, base_url="")

    # when it is saved
    saved = staff.post(change_url(acme), values)

    # then the key is stored encrypted, with its last four and who set it
    assert saved.status_code == 302, saved.content.decode()[:2000]
    row = ProviderKey.objects.get(workspace=acme, provider="anthropic")
    assert crypto.decrypt(row.encrypted_key) == key
    assert row.last4 == key[-4:]
    assert row.created_by is not None
    assert row.created_by.email == "staff@platform.test"
    # and the page shows it by its last four only
    html = staff.get(change_url(acme)).content.decode()
    assert key not in html
    assert f"…{key[-4:]}" in html


def test_an_untouched_key_row_stays_as_it_is(staff: Client, acme: Workspace) -> None:
    # given a stored key, and the workspace page saved without typing anything
    row = provider_key_set(workspace=acme, provider="openai", key=new_key())
    values = form_values(staff, change_url(acme))
    assert values[f"{KEYS}-0-key"] == ""

    # when
    saved = staff.post(change_url(acme), values)

    # then the key is unchanged (an empty key field means "keep it")
    assert saved.status_code == 302
    assert ProviderKey.objects.get(pk=row.pk).encrypted_key == row.encrypted_key


def test_a_key_row_deleted_on_the_workspace_page_is_gone(staff: Client, acme: Workspace) -> None:
    provider_key_set(workspace=acme, provider="openai", key=new_key())
    values = form_values(staff, change_url(acme))
    values[f"{KEYS}-0-DELETE"] = "on"

    saved = staff.post(change_url(acme), values)

    assert saved.status_code == 302
    assert not ProviderKey.objects.filter(workspace=acme).exists()


def test_a_bad_key_is_refused_and_never_rendered_back(staff: Client, acme: Workspace) -> None:
    # given a "key" with a space in it
    values = form_values(staff, change_url(acme))
    add_inline_row(values, KEYS, provider="openai", key="sk-bad SECRETPART-123", base_url="")

    # when
    page = staff.post(change_url(acme), values)

    # then the form says why, without echoing what was typed
    html = page.content.decode()
    assert page.status_code == 200
    assert "That does not look like an API key." in html
    assert "SECRETPART" not in html
    assert not ProviderKey.objects.filter(workspace=acme).exists()


def test_ai_settings_save_overrides_and_limits(staff: Client, acme: Workspace) -> None:
    # given overrides and a daily token limit typed into the AI settings
    values = form_values(staff, change_url(acme))
    values[f"{AI}-0-model_overrides"] = '{"smart": {"provider": "openai", "model": "gpt-4.1"}}'
    values[f"{AI}-0-daily_token_limit"] = "12345"

    # when
    saved = staff.post(change_url(acme), values)

    # then
    assert saved.status_code == 302, saved.content.decode()[:2000]
    ai = AISettings.objects.get(workspace=acme)
    assert ai.model_overrides == {"smart": {"provider": "openai", "model": "gpt-4.1"}}
    assert (ai.daily_token_limit, ai.user_daily_request_limit) == (12345, None)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ('{"genius": {"provider": "openai", "model": "gpt-4.1"}}', "Unknown model alias"),
        ('{"smart": {"provider": "mistral", "model": "large"}}', "Unknown provider"),
        ('{"smart": {"model": "gpt-4.1"}}', "needs exactly a provider and a model"),
        ('["smart"]', "Model overrides are a JSON object"),
    ],
)
def test_bad_model_overrides_are_refused(
    staff: Client, acme: Workspace, overrides: str, error: str
) -> None:
    ai_settings_get(workspace=acme)  # an existing row, edited in place
    values = form_values(staff, change_url(acme))
    values[f"{AI}-0-model_overrides"] = overrides

    page = staff.post(change_url(acme), values)

    assert page.status_code == 200
    assert error in page.content.decode()
    assert AISettings.objects.get(workspace=acme).model_overrides == {}


def test_the_key_admin_adds_a_key_through_the_service(
    staff: Client, acme: Workspace, owner: User
) -> None:
    # given
    key = new_key()

    # when
    saved = staff.post(
        "/admin/workspaces/providerkey/add/",
        {"workspace": acme.pk, "provider": "openai", "key": key, "base_url": ""},
    )

    # then
    assert saved.status_code == 302, saved.content.decode()[:2000]
    row = ProviderKey.objects.get(workspace=acme, provider="openai")
    assert crypto.decrypt(row.encrypted_key) == key
    listing = staff.get("/admin/workspaces/providerkey/").content.decode()
    assert f"…{key[-4:]}" in listing
    assert key not in listing
    assert row.encrypted_key not in listing
    change = staff.get(f"/admin/workspaces/providerkey/{row.pk}/change/").content.decode()
    assert key not in change
    assert row.encrypted_key not in change


def test_the_key_admin_requires_the_key_again_to_change_where_it_is_sent(
    staff: Client, acme: Workspace
) -> None:
    # given an OpenAI-compatible server's key
    key = new_key()
    row = provider_key_set(
        workspace=acme, provider="openai_compatible", key=key, base_url="http://llm.internal/v1"
    )
    url = f"/admin/workspaces/providerkey/{row.pk}/change/"

    # when the base URL is changed without the key
    refused = staff.post(url, {"base_url": "https://attacker.example/v1", "key": ""})

    # then nothing changes: a stored key only goes where it was entered for
    assert refused.status_code == 200
    assert "Enter the key again to change where it is sent." in refused.content.decode()
    assert ProviderKey.objects.get(pk=row.pk).base_url == "http://llm.internal/v1"

    # when the key is typed again with the new URL
    replaced = new_key()
    saved = staff.post(url, {"base_url": "https://llm2.internal/v1", "key": replaced})

    # then both change, and the provider cannot (another provider is another row)
    assert saved.status_code == 302
    row.refresh_from_db()
    assert (row.provider, row.base_url, row.last4) == (
        "openai_compatible",
        "https://llm2.internal/v1",
        replaced[-4:],
    )
    assert crypto.decrypt(row.encrypted_key) == replaced
