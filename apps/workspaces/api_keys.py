"""Workspace API keys: services and selectors.

A secret looks like `sk-aisaas-<40 url-safe characters>`. It exists only in memory and in the
one answer that creates it: the database keeps its sha256 (to authenticate) and its prefix
(`sk-aisaas-` + 6 characters, how people recognise a key in lists and logs).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Collection
from datetime import datetime, timedelta

import structlog
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from apps.common.errors import ApplicationError

from .models import ApiKey, User, Workspace

log = structlog.get_logger(__name__)

API_KEY_SCOPES = ("chat", "embeddings", "outcomes", "documents", "tools", "agents")
# What each scope lets a key do, as the keys page and `apikey create --help` say it.
API_KEY_SCOPE_LABELS = {
    "chat": "chat: chat completions (/v1/chat/completions)",
    "embeddings": "embeddings: embeddings (/v1/embeddings)",
    "outcomes": "outcomes: record and read billable outcomes (/v1/outcomes); each outcome "
    "recorded is billed to this workspace",
    "documents": "documents: add, list, delete and search this workspace's documents "
    "(/v1/documents); a key with it can delete any document",
    "tools": "tools: call an agent's tools over MCP (<workspace host>/mcp), acting as the "
    "person who created the key",
    "agents": 'agents: run the workspace\'s agents with their tools (model "agent:<slug>" in '
    "/v1/chat/completions), acting as the person who created the key",
}
# A new key gets these unless others are chosen. Not `outcomes`: it bills the workspace for
# every outcome a program reports, so only a key made for that purpose should carry it. Not
# `documents`: it can delete any of the workspace's documents.
API_KEY_DEFAULT_SCOPES = ("chat", "embeddings")
API_KEY_MAX_RATE_LIMIT = 100_000
SECRET_PREFIX = "sk-aisaas-"
# 30 random bytes are 40 url-safe characters; the first 6 of them make the visible prefix.
_SECRET_BYTES = 30
_PREFIX_CHARS = 6
_SECRET_RE = re.compile(rf"{re.escape(SECRET_PREFIX)}[A-Za-z0-9_-]{{40}}")
# A 6-character prefix can collide (1 in 64⁶ per pair); a fresh secret settles it.
_CREATE_ATTEMPTS = 3
# last_used_at is written at most this often per key: one UPDATE per request would make every
# API call contend on the key's row.
_TOUCH_INTERVAL = timedelta(seconds=60)


def api_key_hash(secret: str) -> str:
    """The sha256 hex digest stored for `secret`."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret() -> tuple[str, str]:
    """A fresh (secret, prefix)."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
    return secret, secret[: len(SECRET_PREFIX) + _PREFIX_CHARS]


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ApplicationError("Give the key a name.", field="name")
    if len(name) > 100:
        raise ApplicationError("Use at most 100 characters for the key's name.", field="name")
    return name


def _check_scopes(scopes: Collection[str]) -> list[str]:
    """The scopes in their canonical order, without duplicates."""
    if isinstance(scopes, str):  # "chat" would otherwise read as the scopes c, h, a, t
        scopes = [scopes]
    unknown = sorted(set(scopes) - set(API_KEY_SCOPES))
    if unknown:
        raise ApplicationError(
            f"Unknown scope “{unknown[0]}”; use any of {', '.join(API_KEY_SCOPES)}.",
            field="scopes",
        )
    if not scopes:
        raise ApplicationError("Choose at least one scope for the key.", field="scopes")
    return [scope for scope in API_KEY_SCOPES if scope in scopes]


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("The expiry must be in the future.", field="expires_at")


def _check_rate_limit(rate_limit: int | None) -> None:
    if rate_limit is not None and not 1 <= rate_limit <= API_KEY_MAX_RATE_LIMIT:
        raise ApplicationError(
            f"The rate limit is between 1 and {API_KEY_MAX_RATE_LIMIT:,} requests per minute.",
            field="rate_limit_per_minute",
        )


_ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$")
API_KEY_MAX_ORIGINS = 20


def origins_normalised(origins: Collection[str]) -> list[str]:
    """Browser origins as browsers send them (`https://app.example.com[:port]`, lowercase, no
    path or trailing slash), without duplicates; ApplicationError naming a malformed one."""
    if isinstance(origins, str):
        origins = [origins]
    clean: list[str] = []
    for origin in origins:
        value = origin.strip().lower().rstrip("/")
        if not _ORIGIN.match(value):
            raise ApplicationError(
                f"“{origin}” is not a browser origin: write scheme and host, e.g. "
                "https://app.example.com (a port if not the default; no path).",
                field="allowed_origins",
            )
        if value not in clean:
            clean.append(value)
    if len(clean) > API_KEY_MAX_ORIGINS:
        raise ApplicationError(
            f"A key allows at most {API_KEY_MAX_ORIGINS} origins.", field="allowed_origins"
        )
    return clean


def api_key_set_origins(*, api_key: ApiKey, origins: Collection[str]) -> ApiKey:
    """Replace the browser origins allowed to use `api_key` (empty: none, the default)."""
    api_key.allowed_origins = origins_normalised(origins)
    api_key.save(update_fields=["allowed_origins", "updated_at"])
    log.info("api_key.origins_set", prefix=api_key.prefix, origins=api_key.allowed_origins)
    return api_key


def api_key_origin_known(*, origin: str) -> bool:
    """Whether some active key allows `origin` (a CORS preflight names no key, so it is
    answered for an origin some key allows; the request itself is checked against its key)."""
    return (
        ApiKey.objects.filter(revoked_at__isnull=True, allowed_origins__contains=[origin])
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .exists()
    )


def api_key_create(
    *,
    workspace: Workspace,
    name: str,
    created_by: User | None = None,
    scopes: Collection[str] = API_KEY_DEFAULT_SCOPES,
    expires_at: datetime | None = None,
    rate_limit_per_minute: int | None = None,
    allowed_origins: Collection[str] = (),
) -> tuple[ApiKey, str]:
    """Create a key for `workspace`; return it and its secret, which nothing can show again."""
    name = _check_name(name)
    clean_scopes = _check_scopes(scopes)
    origins = origins_normalised(allowed_origins)
    _check_expiry(expires_at)
    _check_rate_limit(rate_limit_per_minute)
    attempt = 1
    while True:
        secret, prefix = _new_secret()
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    workspace=workspace,
                    name=name,
                    prefix=prefix,
                    hashed=api_key_hash(secret),
                    scopes=clean_scopes,
                    rate_limit_per_minute=rate_limit_per_minute,
                    allowed_origins=origins,
                    created_by=created_by,
                    expires_at=expires_at,
                )
            break
        except IntegrityError:
            if attempt == _CREATE_ATTEMPTS:
                raise
            attempt += 1
    log.info(
        "api_key.created",
        workspace=workspace.slug,
        prefix=prefix,
        scopes=clean_scopes,
        created_by=created_by.pk if created_by else None,
    )
    return api_key, secret


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke the key now; revoking a revoked key keeps its first revocation time."""
    now = timezone.now()
    changed = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
        revoked_at=now, updated_at=now
    )
    api_key.refresh_from_db(fields=["revoked_at", "updated_at"])
    if changed:
        log.info("api_key.revoked", workspace_id=api_key.workspace_id, prefix=api_key.prefix)
    return api_key


def api_key_touch(*, api_key_id: int, now: datetime | None = None) -> None:
    """Record that the key was used, at most once a minute per key (one conditional UPDATE)."""
    now = now or timezone.now()
    ApiKey.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - _TOUCH_INTERVAL),
        pk=api_key_id,
    ).update(last_used_at=now)


def api_key_list(*, workspace: Workspace) -> QuerySet[ApiKey]:
    """The workspace's keys, revoked and expired ones included, newest first."""
    return ApiKey.objects.filter(workspace=workspace).select_related("created_by")


def api_key_find(
    *, workspace: Workspace, api_key_id: int | None = None, prefix: str | None = None
) -> ApiKey | None:
    """The workspace's key with that id or prefix; None when missing or another workspace's."""
    if api_key_id is None and prefix is None:
        return None
    keys = api_key_list(workspace=workspace)
    if api_key_id is not None:
        keys = keys.filter(pk=api_key_id)
    if prefix is not None:
        keys = keys.filter(prefix=prefix.strip())
    return keys.first()


def access_api_key(*, workspace: Workspace, api_key_id: int) -> ApiKey:
    """A key of `workspace` by id, or 404."""
    found = api_key_find(workspace=workspace, api_key_id=api_key_id)
    if found is None:
        raise Http404("No such API key.")
    return found


def api_key_get_by_secret(secret: str) -> ApiKey | None:
    """The key `secret` belongs to, with its workspace; None when unknown or malformed.

    Revocation and expiry are not checked here: callers do, to answer with a precise error.
    """
    if not isinstance(secret, str) or not _SECRET_RE.fullmatch(secret):
        return None
    try:
        return ApiKey.objects.select_related("workspace").get(hashed=api_key_hash(secret))
    except ApiKey.DoesNotExist:
        return None
