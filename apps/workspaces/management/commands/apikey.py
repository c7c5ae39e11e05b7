"""Operator CLI for workspace API keys. Secrets are printed once, by `create`; hashes never.

python manage.py apikey create --workspace acme --name NAME [--scopes chat,embeddings,outcomes]
    [--expires-in-days N] [--rate-limit N] [--json]
python manage.py apikey list --workspace acme [--json]
python manage.py apikey revoke --workspace acme (--prefix sk-aisaas-xxxxxx | --id N)
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.common.errors import ApplicationError
from apps.workspaces.api_keys import (
    API_KEY_DEFAULT_SCOPES,
    API_KEY_SCOPE_LABELS,
    API_KEY_SCOPES,
    api_key_create,
    api_key_find,
    api_key_list,
    api_key_revoke,
)
from apps.workspaces.models import ApiKey, Workspace
from apps.workspaces.selectors import workspace_by_slug


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _key_json(api_key: ApiKey) -> dict[str, Any]:
    """What `list` shows of a key: everything but the hash."""
    return {
        "id": api_key.pk,
        "prefix": api_key.prefix,
        "name": api_key.name,
        "scopes": api_key.scopes,
        "rate_limit_per_minute": api_key.rate_limit_per_minute,  # null: the default
        "effective_rate_limit_per_minute": api_key.effective_rate_limit,
        "status": api_key.status,
        "created_by": api_key.created_by.email if api_key.created_by else None,
        "created_at": _iso(api_key.created_at),
        "last_used_at": _iso(api_key.last_used_at),
        "expires_at": _iso(api_key.expires_at),
        "revoked_at": _iso(api_key.revoked_at),
    }


def _when(value: datetime | None, *, empty: str = "never") -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else empty


class Command(BaseCommand):
    help = "Create, list and revoke a workspace's API keys."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key and print its secret (once).")
        create.add_argument("--workspace", required=True, help="workspace slug, e.g. acme")
        create.add_argument("--name", required=True)
        create.add_argument(
            "--scopes",
            default=",".join(API_KEY_DEFAULT_SCOPES),
            help=(
                f"comma-separated subset of {','.join(API_KEY_SCOPES)} (default: "
                f"{','.join(API_KEY_DEFAULT_SCOPES)}). "
                + "; ".join(API_KEY_SCOPE_LABELS[scope] for scope in API_KEY_SCOPES)
            ),
        )
        create.add_argument("--expires-in-days", type=int, default=None)
        create.add_argument("--rate-limit", type=int, default=None, help="requests per minute")
        create.add_argument(
            "--allowed-origin",
            action="append",
            default=[],
            dest="allowed_origins",
            help="a browser origin allowed to call the API with this key (CORS), e.g. "
            "https://app.example.com; repeat for more (default: none)",
        )
        create.add_argument("--json", action="store_true", dest="as_json")
        listing = sub.add_parser("list", help="List the keys (never their secrets).")
        listing.add_argument("--workspace", required=True)
        listing.add_argument("--json", action="store_true", dest="as_json")
        revoke = sub.add_parser("revoke", help="Revoke a key now.")
        revoke.add_argument("--workspace", required=True)
        which = revoke.add_mutually_exclusive_group(required=True)
        which.add_argument("--prefix", help="the key's prefix, e.g. sk-aisaas-3fa9c1")
        which.add_argument("--id", type=int, dest="api_key_id")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = workspace_by_slug(slug=options["workspace"])
        if workspace is None:
            raise CommandError(f"No workspace “{options['workspace']}”.")
        if options["action"] == "create":
            self._create(workspace, options)
        elif options["action"] == "list":
            self._list(workspace, as_json=options["as_json"])
        else:
            self._revoke(workspace, prefix=options["prefix"], api_key_id=options["api_key_id"])

    def _create(self, workspace: Workspace, options: dict[str, Any]) -> None:
        days = options["expires_in_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-in-days must be at least 1.")
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        try:
            api_key, secret = api_key_create(
                workspace=workspace,
                name=options["name"],
                scopes=scopes,
                expires_at=timezone.now() + timedelta(days=days) if days else None,
                rate_limit_per_minute=options["rate_limit"],
                allowed_origins=options["allowed_origins"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if options["as_json"]:
            payload = {
                "key": secret,
                "prefix": api_key.prefix,
                "id": api_key.pk,
                "workspace": workspace.slug,
                "scopes": api_key.scopes,
                "expires_at": _iso(api_key.expires_at),
                "allowed_origins": api_key.allowed_origins,
            }
            self.stdout.write(json.dumps(payload, indent=2))
            return
        self.stdout.write(secret)
        self.stderr.write(
            f"— key “{api_key.name}” ({api_key.prefix}…, id {api_key.pk}) for {workspace.slug}: "
            f"scopes {', '.join(api_key.scopes)}, expires {_when(api_key.expires_at)}, "
            f"{api_key.effective_rate_limit} requests/min. The secret above is shown only once."
        )

    def _list(self, workspace: Workspace, *, as_json: bool) -> None:
        keys = list(api_key_list(workspace=workspace))
        if as_json:
            self.stdout.write(json.dumps([_key_json(k) for k in keys], indent=2))
            return
        if not keys:
            self.stdout.write(f"No API keys in {workspace.slug}.")
            return
        rows = [("ID", "PREFIX", "NAME", "SCOPES", "STATUS", "CREATED", "LAST USED", "EXPIRES")]
        rows += [
            (
                str(k.pk),
                k.prefix,
                k.name,
                ",".join(k.scopes),
                k.status,
                _when(k.created_at),
                _when(k.last_used_at),
                _when(k.expires_at),
            )
            for k in keys
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))

    def _revoke(self, workspace: Workspace, *, prefix: str | None, api_key_id: int | None) -> None:
        api_key = api_key_find(workspace=workspace, api_key_id=api_key_id, prefix=prefix)
        if api_key is None:
            which = f"prefix {prefix}" if prefix is not None else f"id {api_key_id}"
            raise CommandError(f"No API key with {which} in workspace “{workspace.slug}”.")
        already = api_key.revoked_at is not None
        api_key = api_key_revoke(api_key=api_key)
        state = "was already revoked" if already else "is revoked"
        self.stdout.write(f"Key “{api_key.name}” ({api_key.prefix}…) {state}.")
