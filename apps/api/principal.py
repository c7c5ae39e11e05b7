"""Who is calling the API: a workspace API key → its workspace, scopes and rate limit, and the
gateway `CallScope` for the call. Sync (the ORM); the ASGI app runs it in a worker thread.

The API path skips Django's request cycle (`app.py` says why), so nothing closes this thread's
database connection between requests: it is kept, like a persistent connection, and replaced
when it turns out to be broken.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.utils import timezone

from apps.common.errors import ApplicationError
from apps.common.tenancy import use_public_schema
from apps.llm.services import (
    Actor,
    BudgetExceededError,
    CallScope,
    Scope,
    ServiceUnavailableError,
    allm_count,
    call_scope_for,
)
from apps.workspaces.api_keys import api_key_get_by_secret, api_key_touch
from apps.workspaces.models import ApiKey

from .wire import ApiError, application_error, gateway_error

T = TypeVar("T")

TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    api_key: ApiKey
    scope: CallScope


def _unauthorized(message: str, code: str = "invalid_api_key") -> ApiError:
    return ApiError(401, message, code=code, headers={"www-authenticate": 'Bearer realm="aisaas"'})


def bearer_secret(authorization: str) -> str:
    scheme, _, secret = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer sk-aisaas-…'; "
            "workspace owners and admins create keys in the workspace settings.",
            code="missing_api_key",
        )
    return secret.strip()


def rate_scope(api_key: ApiKey, *, schema: str, now: float | None = None) -> Scope:
    """Requests per minute for this key: a fixed one-minute window counted in the same atomic
    reservation as the workspace's budgets."""
    now = time.time() if now is None else now
    minute = int(now // 60)
    limit = api_key.rate_limit_per_minute or settings.API_KEY_DEFAULT_RATE_LIMIT
    return Scope(
        name="api_key_requests_per_minute",
        # The prefix, not the id: ids restart in a fresh database, a Redis counter may not.
        key=f"{schema}:ratelimit:api_key:{api_key.prefix}:{minute}",
        limit=limit,
        amount=1,
        kind="rate",
        unit="requests",
        ttl=120,
        resets_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((minute + 1) * 60)),
    )


def api_key_for(authorization: str) -> ApiKey:
    """The caller's key: known, not revoked, not expired. Raises ApiError (401)."""
    secret = bearer_secret(authorization)
    api_key = with_connection(lambda: api_key_get_by_secret(secret))
    if api_key is None:
        raise _unauthorized("Incorrect API key provided.")
    if api_key.revoked_at is not None:
        raise _unauthorized(f"The API key {api_key.prefix}… was revoked.", code="revoked_api_key")
    if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
        raise _unauthorized(
            f"The API key {api_key.prefix}… expired on {api_key.expires_at:%Y-%m-%d %H:%M} UTC.",
            code="expired_api_key",
        )
    return api_key


def api_key_allowed(authorization: str, *, need: str | None) -> ApiKey:
    """The caller's key, checked (known, not revoked, not expired, allowed `need` unless
    None), its use recorded at most once a minute. Raises ApiError (401/403)."""
    api_key = api_key_for(authorization)
    now = timezone.now()
    if need is not None and need not in (api_key.scopes or ()):
        raise ApiError(
            403,
            f"The API key {api_key.prefix}… may not use {need}; its scopes are: "
            f"{', '.join(api_key.scopes) or 'none'}.",
            type_="permission_error",
            code="insufficient_scope",
        )
    if api_key.last_used_at is None or api_key.last_used_at < now - TOUCH_EVERY:
        with_connection(lambda: api_key_touch(api_key_id=api_key.pk, now=now))
    return api_key


def authenticate(
    authorization: str, *, need: str | None, feature: str, request_id: str
) -> Principal:
    """The caller's key, checked as `api_key_allowed` does, and the gateway scope of its call.
    Raises ApiError (401/403)."""
    api_key = api_key_allowed(authorization, need=need)
    workspace = api_key.workspace
    scope = with_connection(
        lambda: call_scope_for(
            workspace=workspace,
            actor=Actor("api_key", str(api_key.pk)),
            feature=feature,
            request_id=request_id,
            extra_scopes=(rate_scope(api_key, schema=workspace.schema_name),),
        )
    )
    return Principal(api_key=api_key, scope=scope)


def with_connection(work: Callable[[], T]) -> T:
    """Run ORM work on this thread's kept connection, in the public schema; reconnect once if
    the connection broke (a database restart, an idle timeout)."""
    for attempt in (1, 2):
        try:
            use_public_schema()
            return work()
        except (OperationalError, InterfaceError):
            connection.close()
            if attempt == 2:
                raise
        except DatabaseError:
            connection.close()
            raise
    raise AssertionError("unreachable")


async def request_counted(api_key: ApiKey) -> None:
    """Count a request that calls no model against the key's per-minute rate limit (a model
    call counts it in its gateway reservation). Raises ApiError 429 past the limit."""
    try:
        await allm_count(rate_scope(api_key, schema=api_key.workspace.schema_name))
    except (BudgetExceededError, ServiceUnavailableError) as exc:  # 429, or 503 naming Redis
        raise gateway_error(exc) from None


_api_key_allowed = sync_to_async(api_key_allowed, thread_sensitive=False)


async def api_key_counted(authorization: str, *, need: str) -> ApiKey:
    """For endpoints that call no model of their own: the caller's key, allowed `need`, with
    this request counted against its rate limit. Raises ApiError (401/403/429)."""
    api_key = await _api_key_allowed(authorization, need=need)
    await request_counted(api_key)
    return api_key


def _in_db(work: Callable[[], T], params: dict[str, str] | None) -> T:
    try:
        return with_connection(work)
    except ApplicationError as exc:
        raise application_error(exc, params=params) from None


async def in_db(work: Callable[[], T], *, params: dict[str, str] | None = None) -> T:
    """Run service or selector work on an API thread's kept connection; a service's refusal
    is the API's 4xx (its field renamed through `params` where the API names it otherwise)."""
    return await sync_to_async(_in_db, thread_sensitive=False)(work, params)
