"""Workspace AI settings and BYOK keys: services and selectors.

Plain keys exist only in memory: they are encrypted before they reach the database, and the
rest of the product sees the last four characters.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from apps.common import crypto
from apps.common.errors import ApplicationError

from .models import AISettings, Provider, ProviderKey, User, Workspace


@dataclass(frozen=True, slots=True)
class DecryptedKey:
    provider: str
    key: str
    base_url: str

    def __repr__(self) -> str:  # never print a key, even in a traceback or a debugger
        return f"DecryptedKey(provider={self.provider!r}, key='…{self.key[-4:]}')"


def ai_settings_get(*, workspace: Workspace) -> AISettings:
    settings_row, _ = AISettings.objects.get_or_create(workspace=workspace)
    return settings_row


# Providers an alias override may name: the BYOK ones plus the offline local model.
OVERRIDE_PROVIDERS = (*Provider.values, "local")


def model_overrides_validate(value: Any, *, aliases: Collection[str]) -> dict[str, Any]:
    """`{"smart": {"provider": "openai", "model": "gpt-4.1"}, …}` checked against the known
    aliases and providers; ApplicationError (field `model_overrides`) otherwise."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ApplicationError(
            'Model overrides are a JSON object such as {"smart": {"provider": "openai", '
            '"model": "gpt-4.1"}}.',
            field="model_overrides",
        )
    for alias, route in value.items():
        if alias not in aliases:
            known = ", ".join(sorted(aliases))
            raise ApplicationError(
                f"Unknown model alias “{alias}”; use one of: {known}.", field="model_overrides"
            )
        if (
            not isinstance(route, dict)
            or set(route) != {"provider", "model"}
            or not all(isinstance(v, str) and v.strip() for v in route.values())
        ):
            raise ApplicationError(
                f"The override of “{alias}” needs exactly a provider and a model.",
                field="model_overrides",
            )
        if route["provider"] not in OVERRIDE_PROVIDERS:
            raise ApplicationError(
                f"Unknown provider “{route['provider']}” in the override of “{alias}”; use one "
                f"of: {', '.join(OVERRIDE_PROVIDERS)}.",
                field="model_overrides",
            )
    return value


def provider_key_validate(*, provider: str, key: str, base_url: str = "") -> str:
    """The key, stripped, when it can be stored for `provider`; ApplicationError otherwise.

    Messages never quote the key: they reach forms, logs and error trackers.
    """
    key = key.strip()
    if provider not in Provider.values:
        raise ApplicationError(f"Unknown provider “{provider}”.", field="provider")
    if len(key) < 8 or any(ch.isspace() for ch in key):
        raise ApplicationError("That does not look like an API key.", field="key")
    if provider == Provider.OPENAI_COMPATIBLE and not base_url:
        raise ApplicationError("An OpenAI-compatible server needs its base URL.", field="base_url")
    return key


def provider_key_set(
    *, workspace: Workspace, provider: str, key: str, base_url: str = "", actor: User | None = None
) -> ProviderKey:
    """Store (or replace) the workspace's key for `provider`, encrypted."""
    key = provider_key_validate(provider=provider, key=key, base_url=base_url)
    with transaction.atomic():
        row, _ = ProviderKey.objects.update_or_create(
            workspace=workspace,
            provider=provider,
            defaults={
                "encrypted_key": crypto.encrypt(key),
                "last4": key[-4:],
                "base_url": base_url,
                "created_by": actor,
            },
        )
    return row


def provider_key_delete(*, workspace: Workspace, provider: str) -> None:
    ProviderKey.objects.filter(workspace=workspace, provider=provider).delete()


def provider_keys_decrypted(*, workspace: Workspace) -> list[DecryptedKey]:
    """The workspace's BYOK keys in clear, for building provider clients in memory only."""
    return [
        DecryptedKey(
            provider=row.provider, key=crypto.decrypt(row.encrypted_key), base_url=row.base_url
        )
        for row in ProviderKey.objects.filter(workspace=workspace)
    ]


def all_workspaces_rotate_provider_keys() -> int:
    """Re-encrypt every workspace's keys under the newest encryption key; return the count.

    All or nothing: a token no configured key can decrypt (crypto.InvalidToken) rolls the
    whole rotation back, so no row is ever left under a key that is about to be dropped.
    """
    count = 0
    with transaction.atomic():
        for row in ProviderKey.objects.select_for_update().order_by("pk").iterator():
            row.encrypted_key = crypto.rotate(row.encrypted_key)
            row.save(update_fields=["encrypted_key", "updated_at"])
            count += 1
    return count
