"""What the trace admins share: the read-only base for big system-written tables, and the
parsing of what staff type into searches and filters (ids, dates, identifiers).

A changelist's admin says where the call-log fields are (`call_path`: "call__" from a trace)
and where the trace's are (`trace_path`: "trace__" from a call).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, time, timedelta

from django.contrib import admin
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apps.common.admin import ReadOnlyAdmin

# Aliases, features, models and providers are short identifiers; anything else is a typo.
IDENTIFIER = re.compile(r"^[A-Za-z0-9_.:/@-]{1,128}\*?$")


class StaffReadOnly(ReadOnlyAdmin):
    """Rows written by the system, in big tables: staff read them page by page."""

    show_full_result_count = False  # no COUNT(*) over the whole table on every page
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50


def field_paths(model_admin: admin.ModelAdmin) -> tuple[str, str]:
    """(`call_path`, `trace_path`) of a changelist's admin."""
    return getattr(model_admin, "call_path", ""), getattr(model_admin, "trace_path", "")


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


def parse_moment(value: str, *, end: bool = False) -> datetime | None:
    """An ISO date or date-time (naive ones in the current time zone); a bare date as an end
    means the end of that day. None when malformed."""
    value = value.strip()
    try:
        day = parse_date(value)
        moment = None if day else parse_datetime(value)
    except ValueError:  # well-formed but impossible, e.g. 2026-02-30
        return None
    if day is not None:
        moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
    if moment is None:
        return None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def identifier_q(term: str, *, call_path: str, trace_field: str) -> Q | None:
    """Rows whose request id, trace id or call id is `term` (all indexed), or None when `term`
    cannot be an id."""
    if not term or len(term) > 64 or any(ch.isspace() for ch in term):
        return None
    q = Q(**{f"{call_path}request_id": term})
    if (found := parse_uuid(term)) is not None:
        q |= Q(**{trace_field: found}) | Q(**{f"{call_path}call_id": found})
        q |= Q(**{f"{call_path}request_id": found.hex})
    return q
