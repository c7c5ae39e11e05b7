"""`/v1/outcomes` on the wire: the price in, outcomes and lists of them out."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from apps.billing.ledger import MICROS_PER_USD, usd_to_micros
from apps.billing.models import Outcome
from apps.common.errors import ApplicationError

from ..schemas import OutcomeCreate
from ..schemas.outcomes import MAX_ID
from .errors import ApiError


def outcome_price_micros(body: OutcomeCreate) -> int:
    """`price_usd` in integer micro-dollars, exactly; more precision than a micro-dollar (or
    more than the largest amount) is refused, never rounded."""
    try:
        return usd_to_micros(body.price_usd)
    except ApplicationError as exc:
        raise ApiError(
            400,
            f"Invalid value for 'price_usd': {exc.message}",
            code="invalid_value",
            param="price_usd",
        ) from None


def outcome_id(text: str) -> int | None:
    """The outcome id in a path, or None when it cannot be one (the answer is then a 404)."""
    if not re.fullmatch(r"[0-9]{1,19}", text):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def outcome(row: Outcome) -> dict[str, Any]:
    return {
        "id": row.pk,
        "object": "outcome",
        "kind": row.kind,
        "price_micros": row.price_micros,
        "price_usd": f"{Decimal(row.price_micros) / MICROS_PER_USD:.6f}",
        "status": str(row.status),
        "external_id": row.external_id,
        "trace_id": str(row.trace_id) if row.trace_id else None,
        "run_id": row.run_id or None,
        "created_at": _timestamp(row.created_at),
        "dispute_window_ends_at": _timestamp(row.window_ends_at),
    }


def outcome_list(rows: list[Outcome], *, has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": [outcome(row) for row in rows], "has_more": has_more}
