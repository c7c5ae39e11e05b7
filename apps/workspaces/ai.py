"""Workspace AI settings and BYOK keys: services and selectors.

Plain keys exist only in memory: they are encrypted before they reach the database, and the
rest of the product sees the last four characters.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def provider_key_set(
    *, workspace: Workspace, provider: str, key: str, base_url: str = "", actor: User | None = None
) -> ProviderKey:
    """Store (or replace) the workspace's key for `provider`, encrypted."""
    key = key.strip()
    if provider not in Provider.values:
        raise ApplicationError(f"Unknown provider “{provider}”.", field="provider")
    if len(key) < 8 or any(ch.isspace() for ch in key):
        raise ApplicationError("That does not look like an API key.", field="key")
    if provider == Provider.OPENAI_COMPATIBLE and not base_url:
        raise ApplicationError("An OpenAI-compatible server needs its base URL.", field="base_url")
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
    """Re-encrypt every workspace's keys under the newest encryption key; return the count."""
    count = 0
    for row in ProviderKey.objects.select_for_update().iterator():
        row.encrypted_key = crypto.rotate(row.encrypted_key)
        row.save(update_fields=["encrypted_key", "updated_at"])
        count += 1
    return count
