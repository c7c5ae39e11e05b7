"""Operator CLI for a workspace's credit.

python manage.py credits balance --workspace acme [--json]
python manage.py credits grant --workspace acme --usd 5 --reason adjustment
    [--idempotency-key KEY] [--note TEXT] [--json]
python manage.py credits take --workspace acme --usd 0.5 [--idempotency-key KEY] [--note TEXT]
    [--json]   (a correcting adjustment; never takes the balance below zero)

Without --idempotency-key every run is a new entry; with one, running it again changes nothing
(and reusing the key for a different entry is refused).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.billing.debit_queue import credit_status
from apps.billing.ledger import (
    GRANT_REASONS,
    Posting,
    credits,
    credits_grant,
    credits_take,
    usd_to_micros,
)
from apps.common.errors import ApplicationError
from apps.workspaces.models import Workspace
from apps.workspaces.selectors import workspace_by_slug


class Command(BaseCommand):
    help = "Show a workspace's credit balance, grant it credit or take credit back."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        balance = sub.add_parser("balance", help="The balance, and what calls hold beyond it.")
        balance.add_argument("--workspace", required=True, help="workspace slug, e.g. acme")
        balance.add_argument("--json", action="store_true", dest="as_json")
        grant = sub.add_parser("grant", help="Add credit (a new ledger entry).")
        grant.add_argument("--workspace", required=True)
        grant.add_argument("--usd", required=True, help="dollars, e.g. 5 or 0.25")
        grant.add_argument("--reason", required=True, choices=GRANT_REASONS)
        grant.add_argument("--idempotency-key", default=None)
        grant.add_argument("--note", default="", help="kept in the entry's metadata")
        grant.add_argument("--json", action="store_true", dest="as_json")
        take = sub.add_parser("take", help="Take credit back (an adjustment; not below zero).")
        take.add_argument("--workspace", required=True)
        take.add_argument("--usd", required=True, help="dollars to take, e.g. 0.5")
        take.add_argument("--idempotency-key", default=None)
        take.add_argument("--note", default="", help="kept in the entry's metadata")
        take.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = workspace_by_slug(slug=options["workspace"])
        if workspace is None:
            raise CommandError(f"No workspace “{options['workspace']}”.")
        if options["action"] == "balance":
            self._balance(workspace, as_json=options["as_json"])
        else:
            self._post(workspace, options)

    def _balance(self, workspace: Workspace, *, as_json: bool) -> None:
        status = credit_status(workspace_id=workspace.pk, schema=workspace.schema_name)
        if as_json:
            payload = {
                "workspace": workspace.slug,
                "plan": workspace.plan,
                "balance_micros": status.balance_micros,
                "credits": float(credits(status.balance_micros)),
                "pending_micros": status.pending_micros,
                "reserved_micros": status.reserved_micros,
                "available_micros": status.available_micros,
            }
            self.stdout.write(json.dumps(payload, indent=2))
            return
        self.stdout.write(
            f"{workspace.slug}: {credits(status.balance_micros):,} credits "
            f"({status.balance_micros:,} µ$); pending {status.pending_micros:,} µ$, "
            f"reserved {status.reserved_micros:,} µ$, available {status.available_micros:,} µ$"
        )

    def _post(self, workspace: Workspace, options: dict[str, Any]) -> None:
        metadata = {"by": "operator", **({"note": options["note"]} if options["note"] else {})}
        try:
            amount = usd_to_micros(options["usd"])
            posting: Posting
            if options["action"] == "grant":
                posting = credits_grant(
                    workspace_id=workspace.pk,
                    amount_micros=amount,
                    reason=options["reason"],
                    idempotency_key=options["idempotency_key"],
                    metadata=metadata,
                )
            else:
                posting = credits_take(
                    workspace_id=workspace.pk,
                    amount_micros=amount,
                    idempotency_key=options["idempotency_key"],
                    metadata=metadata,
                )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        entry = posting.entry
        if options["as_json"]:
            payload = {
                "workspace": workspace.slug,
                "created": posting.created,
                "entry_id": entry.pk,
                "delta_micros": entry.delta_micros,
                "balance_micros": posting.balance_micros,
                "credits": float(credits(posting.balance_micros)),
                "idempotency_key": entry.idempotency_key,
            }
            self.stdout.write(json.dumps(payload, indent=2))
            return
        if not posting.created:
            self.stdout.write(f"Already posted (entry {entry.pk}); nothing changed.")
            return
        verb = "Granted" if entry.delta_micros > 0 else "Took back"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {credits(abs(entry.delta_micros)):,} credits ({workspace.slug}, "
                f"entry {entry.pk}); balance {credits(posting.balance_micros):,} credits."
            )
        )
