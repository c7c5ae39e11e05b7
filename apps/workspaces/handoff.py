"""Carry a login from the public host to a workspace host.

Sessions are per host unless SESSION_COOKIE_DOMAIN is set (browsers treat `localhost` cookie
domains inconsistently), so the public dashboard opens a workspace through a signed, one-time,
60-second link that logs the same user in on the workspace host.
"""

from __future__ import annotations

import secrets

from django.core import signing
from django.core.cache import cache

from .models import User, Workspace

SALT = "aisaas.workspace-handoff"
MAX_AGE_SECONDS = 60


def handoff_token(*, user: User, workspace: Workspace) -> str:
    return signing.dumps(
        {
            "u": user.pk,
            "w": workspace.pk,
            "h": user.get_session_auth_hash(),
            "n": secrets.token_hex(8),
        },
        salt=SALT,
    )


def handoff_consume(*, token: str, workspace: Workspace) -> User | None:
    """The user a valid, unused token for `workspace` names, else None."""
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE_SECONDS)
    except signing.BadSignature:
        return None
    if data.get("w") != workspace.pk or not cache.add(
        f"handoff:{data['n']}", 1, MAX_AGE_SECONDS * 2
    ):
        return None
    user = User.objects.filter(pk=data.get("u"), is_active=True).first()
    if user is None or user.get_session_auth_hash() != data.get("h"):
        return None
    return user
