"""Agent identity: the short-lived signed token an agent run presents to our own HTTP surfaces
(MCP at /mcp, the internal API), saying which workspace, agent, user and run it acts for.

HS256 JWTs under a key of their own (derived from AGENT_TOKEN_SECRET or SECRET_KEY under a
label, never either raw), living at most 15 minutes. Verification pins the algorithm, requires
every registered claim, checks audience, issuer and the serving workspace, then asks Redis
whether the token (or its whole run) was revoked; with Redis unreachable the token is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

import jwt
import redis
import structlog
from django.conf import settings

from apps.common.errors import ApplicationError
from apps.workspaces.models import Workspace

log = structlog.get_logger(__name__)

ALGORITHM = "HS256"
ISSUER = "aisaas"
MAX_TTL_SECONDS = 900  # whatever a caller or the settings ask for
LEEWAY_SECONDS = 5  # clock skew between the host that issues and the one that verifies
MAX_TOKEN_CHARS = 4096  # ours are ~500; longer input is not parsed at all
_KEY_LABEL = b"aisaas/agent-identity-token/v1"
_REQUIRED = ["exp", "nbf", "iat", "aud", "iss", "jti", "sub"]

Reason = Literal[
    "expired",
    "not_yet_valid",
    "bad_signature",
    "wrong_audience",
    "wrong_issuer",
    "wrong_workspace",
    "revoked",
    "malformed",
    "unavailable",
]

_MESSAGES: dict[Reason, str] = {
    "expired": "The agent token has expired.",
    "not_yet_valid": "The agent token is not valid yet.",
    "bad_signature": "The agent token's signature is not valid.",
    "wrong_audience": "The agent token is not meant for this service.",
    "wrong_issuer": "The agent token was not issued by this platform.",
    "wrong_workspace": "The agent token is not valid for this workspace.",
    "revoked": "The agent token has been revoked.",
    "malformed": "The agent token is malformed.",
    "unavailable": "Agent tokens cannot be checked right now; try again shortly.",
}


class AgentTokenError(ApplicationError):
    """An agent token refused. `reason` says why (for logs and tests); the message never
    echoes the token or its claims. 401, or 503 when revocations cannot be read."""

    status = 401
    code = "invalid_agent_token"

    def __init__(self, reason: Reason) -> None:
        super().__init__(_MESSAGES[reason], extra={"reason": reason})
        self.reason: Reason = reason
        if reason == "unavailable":
            self.status = 503


@dataclass(frozen=True, slots=True)
class AgentClaims:
    """Who a verified token speaks for."""

    workspace: str  # the workspace's schema name
    agent_id: int
    agent_slug: str
    on_behalf_of_id: int  # the user who started the run
    run_id: str
    jti: str
    issued_at: datetime
    expires_at: datetime


def agent_token_issue(
    *,
    workspace: Workspace,
    agent_id: int,
    agent_slug: str,
    on_behalf_of_id: int,
    run_id: str,
    ttl_seconds: int | None = None,
) -> str:
    """A signed token for one agent run, living `ttl_seconds` (default AGENT_TOKEN_TTL), at
    most MAX_TTL_SECONDS."""
    ttl = settings.AGENT_TOKEN_TTL if ttl_seconds is None else ttl_seconds
    if ttl <= 0:
        raise ValueError("ttl_seconds must be positive")
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": settings.AGENT_TOKEN_AUDIENCE,
        "sub": f"agent:{agent_id}",
        "iat": now,
        "nbf": now,
        "exp": now + min(ttl, MAX_TTL_SECONDS),
        "jti": uuid.uuid4().hex,
        "workspace": workspace.schema_name,
        "agent_id": agent_id,
        "agent_slug": agent_slug,
        "on_behalf_of": on_behalf_of_id,
        "run_id": run_id,
    }
    return jwt.encode(payload, signing_key(), algorithm=ALGORITHM)


def agent_token_verify(token: str, *, workspace: Workspace) -> AgentClaims:
    """The claims of `token` if it is genuine, current, meant for us, of `workspace` (the one
    serving the request) and not revoked; AgentTokenError otherwise."""
    try:
        claims = _decode(token)
        if claims.workspace != workspace.schema_name:
            raise AgentTokenError("wrong_workspace")
        _check_not_revoked(claims)
    except AgentTokenError as error:
        log.info("agent_token.refused", reason=error.reason, workspace=workspace.schema_name)
        raise
    return claims


def agent_token_revoke(jti: str, *, workspace: Workspace, expires_at: datetime) -> None:
    """Refuse the token `jti` of `workspace` from now on. Remembered only while the token could
    still pass (its expiry plus the leeway), so revocations never pile up. A Redis failure
    propagates: a revocation is never silently dropped."""
    remaining = math.ceil(expires_at.timestamp() - time.time()) + LEEWAY_SECONDS
    if remaining > 0:
        _redis(settings.REDIS_URL).set(_jti_key(workspace.schema_name, jti), b"1", ex=remaining)


def agent_token_revoke_run(run_id: str, *, workspace: Workspace) -> None:
    """Refuse every token issued so far for run `run_id` of `workspace`; tokens issued more
    than LEEWAY_SECONDS later (a deliberately restarted run) pass. Remembered as long as any
    of the refused tokens could live."""
    # Issued "so far" reaches LEEWAY_SECONDS ahead, for a host whose clock runs ahead of ours.
    revoked_at = int(time.time()) + LEEWAY_SECONDS
    _redis(settings.REDIS_URL).set(
        _run_key(workspace.schema_name, run_id),
        revoked_at,
        ex=MAX_TTL_SECONDS + 2 * LEEWAY_SECONDS,
    )


def signing_key() -> bytes:
    """The HS256 key: HMAC-SHA256 of a fixed label under AGENT_TOKEN_SECRET, else SECRET_KEY,
    so no other use of those secrets (sessions, signed cookies) shares a key with these tokens."""
    secret = settings.AGENT_TOKEN_SECRET or settings.SECRET_KEY
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _decode(token: str) -> AgentClaims:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise AgentTokenError("malformed")
    try:
        payload = jwt.decode(
            token,
            signing_key(),
            algorithms=[ALGORITHM],
            audience=settings.AGENT_TOKEN_AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": _REQUIRED, "strict_aud": True},
        )
    except jwt.ExpiredSignatureError:
        raise AgentTokenError("expired") from None
    except jwt.ImmatureSignatureError:  # nbf, or iat, in the future
        raise AgentTokenError("not_yet_valid") from None
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
        # A header naming another algorithm ("none", RS256, HS512) is refused before any key use.
        raise AgentTokenError("bad_signature") from None
    except jwt.InvalidAudienceError:
        raise AgentTokenError("wrong_audience") from None
    except jwt.InvalidIssuerError:
        raise AgentTokenError("wrong_issuer") from None
    except jwt.PyJWTError:  # not a JWT, bad JSON, a required claim missing or mistyped
        raise AgentTokenError("malformed") from None
    return _claims(payload)


def _claims(payload: dict[str, Any]) -> AgentClaims:
    """Our own claims, each of its type; a token that lives longer than any we issue is not
    ours to accept even when its signature holds."""
    fields = {
        "workspace": str,
        "agent_id": int,
        "agent_slug": str,
        "on_behalf_of": int,
        "run_id": str,
        "jti": str,
        "iat": int,
        "exp": int,
    }
    for name, kind in fields.items():
        value = payload.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise AgentTokenError("malformed")
    if payload["sub"] != f"agent:{payload['agent_id']}":
        raise AgentTokenError("malformed")
    if payload["exp"] - payload["iat"] > MAX_TTL_SECONDS:
        raise AgentTokenError("malformed")
    return AgentClaims(
        workspace=payload["workspace"],
        agent_id=payload["agent_id"],
        agent_slug=payload["agent_slug"],
        on_behalf_of_id=payload["on_behalf_of"],
        run_id=payload["run_id"],
        jti=payload["jti"],
        issued_at=datetime.fromtimestamp(payload["iat"], tz=UTC),
        expires_at=datetime.fromtimestamp(payload["exp"], tz=UTC),
    )


def _check_not_revoked(claims: AgentClaims) -> None:
    """One round trip for both revocations. Fails closed: no answer from Redis, no token."""
    keys = [_jti_key(claims.workspace, claims.jti), _run_key(claims.workspace, claims.run_id)]
    try:
        jti_revoked, run_revoked_at = _redis(settings.REDIS_URL).mget(keys)
    except redis.RedisError:
        log.warning("agent_token.revocations_unreachable", workspace=claims.workspace)
        raise AgentTokenError("unavailable") from None
    if jti_revoked is not None:
        raise AgentTokenError("revoked")
    if run_revoked_at is not None and claims.issued_at.timestamp() <= int(run_revoked_at):
        raise AgentTokenError("revoked")


def _jti_key(schema: str, jti: str) -> str:
    return f"{schema}:agent_token:revoked:{jti}"


def _run_key(schema: str, run_id: str) -> str:
    return f"{schema}:agent_token:revoked_run:{run_id}"


@lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    # Short timeouts: a verify waits at most about a second before refusing the token.
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
