from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def workspace(request: HttpRequest) -> dict[str, Any]:
    """The current workspace and membership (None on the public host) and the public URL."""
    return {
        "workspace": getattr(request, "workspace", None),
        "membership": getattr(request, "membership", None),
        "site_url": settings.SITE_URL,
    }
