"""What every answer to a known key carries, decided once the key is known: the browser-origin
check (CORS: a key allows the origins its owner listed, none by default) and OpenAI's
rate-limit headers (`x-ratelimit-*`: the key's requests per minute and the workspace's tokens
per day, as the gateway's reservation counts them). A CORS preflight names no key, so it is
answered for an origin that some active key allows; the request that follows is checked
against its own key."""

from __future__ import annotations

import re

from asgiref.sync import sync_to_async

from apps.llm.services import (
    BudgetExceededError,
    ScopeUsage,
    allm_count,
    allm_scope_usage,
    daily_scopes,
)
from apps.workspaces.api_keys import api_key_origin_known

from . import wire
from .principal import Principal, authenticate, rate_scope, with_connection
from .request import Request

_authenticate = sync_to_async(authenticate, thread_sensitive=False)

EXPOSED = ", ".join(
    (
        "x-request-id",
        "x-aisaas-overhead-ms",
        "retry-after",
        "x-should-retry",
        *(
            f"x-ratelimit-{what}-{unit}"
            for what in ("limit", "remaining", "reset")
            for unit in ("requests", "tokens")
        ),
    )
)
PREFLIGHT_MAX_AGE = "600"
_HEADER_NAMES = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~, -]{0,2000}$")


async def principal_for(
    request: Request, *, need: str | None, feature: str, counted: bool = False
) -> Principal:
    """The caller, admitted: key checked (401/403), its origin allowed (403), the rate-limit
    headers set on every answer from here on. `counted`: the request calls no model, so it
    counts against the key's per-minute limit here (429), not in a gateway reservation."""
    principal = await _authenticate(
        request.headers.get("authorization", ""), need=need, feature=feature, request_id=request.id
    )
    _check_origin(request, principal)
    key_scope = rate_scope(principal.api_key, schema=principal.scope.schema)
    day_tokens = daily_scopes(principal.scope, tokens=0)[0]
    requests, tokens = await allm_scope_usage([key_scope, day_tokens])
    request.extra_headers.update(rate_limit_headers(requests, tokens))
    if counted:
        try:
            await allm_count(key_scope)
        except BudgetExceededError as exc:
            raise wire.gateway_error(exc) from None
    return principal


def _check_origin(request: Request, principal: Principal) -> None:
    origin = request.headers.get("origin")
    if origin is None:
        return
    if origin.lower() not in (principal.api_key.allowed_origins or ()):
        raise wire.ApiError(
            403,
            f"The origin {origin} may not use the API key {principal.api_key.prefix}…: a "
            "workspace owner lists the browser origins a key allows (none by default).",
            type_="permission_error",
            code="origin_not_allowed",
        )
    request.extra_headers.update(
        {
            "access-control-allow-origin": origin,
            "access-control-expose-headers": EXPOSED,
            "vary": "origin",
        }
    )


def rate_limit_headers(requests: ScopeUsage, tokens: ScopeUsage) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers. `requests` is read before this request counts, so it
    is counted here as one more."""
    return {
        "x-ratelimit-limit-requests": str(requests.limit),
        "x-ratelimit-remaining-requests": str(
            max(0, requests.limit - requests.used - requests.reserved - 1)
        ),
        "x-ratelimit-reset-requests": _duration(requests.resets_at),
        "x-ratelimit-limit-tokens": str(tokens.limit),
        "x-ratelimit-remaining-tokens": str(max(0, tokens.limit - tokens.used - tokens.reserved)),
        "x-ratelimit-reset-tokens": _duration(tokens.resets_at),
    }


def _duration(resets_at: str | None) -> str:
    """Time until `resets_at` the way OpenAI writes it: `1h2m3s`, `42s`."""
    seconds = wire.retry_after(resets_at) if resets_at else 0
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def _origin_known(origin: str) -> bool:
    return with_connection(lambda: api_key_origin_known(origin=origin))


async def preflight(request: Request, methods: list[str]) -> None:
    """OPTIONS on a known path. With `Origin` and `Access-Control-Request-Method` it is a
    CORS preflight: 204 with the CORS headers when some active key allows the origin and the
    method exists, else 403 without them (the browser then refuses the request). Without,
    a plain 204 listing the methods (`allow`)."""
    allow = ", ".join([*methods, "OPTIONS"])
    origin = request.headers.get("origin")
    wanted = request.headers.get("access-control-request-method")
    if origin is None or wanted is None:
        await request.start(204, "text/plain", {"allow": allow})
        await request.write(b"", more=False)
        return
    known = await sync_to_async(_origin_known, thread_sensitive=False)(origin.lower())
    if not known or wanted.upper() not in methods:
        raise wire.ApiError(
            403,
            f"No API key allows {wanted} {request.scope['path']} from the origin {origin}.",
            type_="permission_error",
            code="origin_not_allowed",
        )
    asked = request.headers.get("access-control-request-headers", "")
    headers = {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": ", ".join(methods),
        "access-control-allow-headers": asked if _HEADER_NAMES.match(asked) else "authorization",
        "access-control-max-age": PREFLIGHT_MAX_AGE,
        "access-control-expose-headers": EXPOSED,
        "vary": "origin, access-control-request-method, access-control-request-headers",
        "allow": allow,
    }
    await request.start(204, "text/plain", headers)
    await request.write(b"", more=False)
