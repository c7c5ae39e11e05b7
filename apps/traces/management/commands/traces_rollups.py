"""Repair the dashboard rollups from llm_call_log.

python manage.py traces_rollups rebuild --since 2026-11-01 [--until 2026-11-30]
    recompute the UTC days [since, until] (until defaults to today) in one transaction
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.traces.rollups import rollups_rebuild


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a date: use YYYY-MM-DD.") from exc


class Command(BaseCommand):
    help = "Rebuild the hourly and daily call rollups for a date range from llm_call_log."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        rebuild = sub.add_parser("rebuild", help="Recompute the rollups of a range of UTC days.")
        rebuild.add_argument("--since", required=True, help="first UTC day, YYYY-MM-DD")
        rebuild.add_argument("--until", default=None, help="last UTC day (default: today)")

    def handle(self, *args: Any, **options: Any) -> None:
        since = _day(options["since"])
        until = _day(options["until"]) if options["until"] else datetime.now(UTC).date()
        if until < since:
            raise CommandError(f"--until {until} is before --since {since}.")
        calls = rollups_rebuild(since=since, until=until + timedelta(days=1))
        self.stdout.write(f"Rebuilt rollups for {since} to {until} (UTC): {calls} calls.")
