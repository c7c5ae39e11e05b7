from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def workspace(request: HttpRequest) -> dict[str, Any]:
    """The current workspace and membership, and the public URL.

    The workspace is shown to its members only: on the public host, and to anonymous visitors
    of a workspace's login page, it is None.
    """
    membership = getattr(request, "membership", None)
    return {
        "workspace": membership.workspace if membership else None,
        "membership": membership,
        "site_url": settings.SITE_URL,
    }
