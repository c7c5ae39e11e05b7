"""Re-encrypt every stored BYOK key under the newest FIELD_ENCRYPTION_KEYS entry.

Rotation: put a new key first in FIELD_ENCRYPTION_KEYS (keep the old one after it), deploy, run
`python manage.py rotate_encryption_keys`, then drop the old key.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.common.crypto import InvalidToken
from apps.workspaces.ai import all_workspaces_rotate_provider_keys


class Command(BaseCommand):
    help = "Re-encrypt every workspace's provider keys under the newest encryption key."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = all_workspaces_rotate_provider_keys()
        except InvalidToken as exc:
            raise CommandError(
                "A stored provider key cannot be decrypted with any key in "
                "FIELD_ENCRYPTION_KEYS; nothing was changed. Put the old key back (after the "
                "new one) and run the command again."
            ) from exc
        noun = "key" if count == 1 else "keys"
        self.stdout.write(f"Re-encrypted {count} provider {noun} under the newest key.")
