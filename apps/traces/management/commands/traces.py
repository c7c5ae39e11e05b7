"""Operator CLI for traces.

python manage.py traces retention [--dry-run] [--json]
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.traces.ports import masked_copies
from apps.traces.retention import all_workspaces_retention_apply


class Command(BaseCommand):
    help = "Trace maintenance: apply the retention tiers now (what beat does daily)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        retention = sub.add_parser(
            "retention",
            help="Delete raw and masked trace content past each plan's retention "
            "(workspaces under legal hold are skipped).",
        )
        retention.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
        )
        retention.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        results = all_workspaces_retention_apply(dry_run=dry_run)
        if options["as_json"]:
            payload = {"dry_run": dry_run, "workspaces": [c.as_dict() for c in results]}
            self.stdout.write(json.dumps(payload, indent=2))
            return
        verb = "would delete" if dry_run else "deleted"
        for c in results:
            if c.legal_hold:
                self.stdout.write(f"{c.workspace:<24} {c.plan:<10} legal hold: skipped")
                continue
            copies = "".join(
                f", {c.copies_deleted.get(copy.name, 0):>6,} {copy.label}"
                for copy in masked_copies()
            )
            self.stdout.write(
                f"{c.workspace:<24} {c.plan:<10} {verb} {c.raw_deleted:>8,} raw "
                f"(>{c.raw_days}d), {c.traces_deleted:>8,} masked traces{copies} "
                f"(>{c.masked_days}d)"
            )
