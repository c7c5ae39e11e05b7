from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .selectors import open_count_for


def approvals(request: HttpRequest) -> dict[str, Any]:
    """The badge on every workspace page: actions waiting for this person's decision."""
    membership = getattr(request, "membership", None)
    if membership is None:
        return {}
    return {"approvals_open": open_count_for(membership=membership)}
