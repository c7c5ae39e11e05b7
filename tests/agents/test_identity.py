"""Agent identity tokens: each test is an attack on agent_token_verify, on real Redis.

Forged tokens are built by hand (base64url segments, HMAC computed here) or signed directly
with the derived key, so a test can set any claim an attacker could; the baseline test shows
that the untouched claim set passes, so each refusal is due to the one thing changed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
import redis
import time_machine
from django.conf import settings
from django.test import override_settings

from apps.agents.identity import (
    LEEWAY_SECONDS,
    MAX_TTL_SECONDS,
    AgentTokenError,
    agent_token_issue,
    agent_token_revoke,
    agent_token_revoke_run,
    agent_token_verify,
    signing_key,
)
from apps.common.errors import ApplicationError
from apps.workspaces.models import Workspace

pytestmark = pytest.mark.usefixtures("fresh_redis")

DROP = object()  # a claim left out


def _segment(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hmac_signature(signing_input: str, key: bytes, digest: Any = hashlib.sha256) -> str:
    mac = hmac.new(key, signing_input.encode(), digest).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _claims(workspace: Workspace, /, **changes: Any) -> dict[str, Any]:
    """A complete, valid claim set for agent 7 acting for user 42 in `workspace`."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "aisaas",
        "aud": settings.AGENT_TOKEN_AUDIENCE,
        "sub": "agent:7",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "workspace": workspace.schema_name,
        "agent_id": 7,
        "agent_slug": "assistant",
        "on_behalf_of": 42,
        "run_id": "run-1",
    }
    for name, value in changes.items():
        if value is DROP:
            del claims[name]
        else:
            claims[name] = value
    return claims


def _signed(claims: dict[str, Any], key: bytes | None = None) -> str:
    return jwt.encode(claims, key or signing_key(), algorithm="HS256")


def _issue(workspace: Workspace, **changes: Any) -> str:
    arguments: dict[str, Any] = {
        "workspace": workspace,
        "agent_id": 7,
        "agent_slug": "assistant",
        "on_behalf_of_id": 42,
        "run_id": "run-1",
        **changes,
    }
    return agent_token_issue(**arguments)


def _as_datetime(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def _refusal(token: Any, workspace: Workspace) -> AgentTokenError:
    with pytest.raises(AgentTokenError) as caught:
        agent_token_verify(token, workspace=workspace)
    return caught.value


def test_an_issued_token_verifies_to_its_claims(acme: Workspace) -> None:
    token = _issue(acme, agent_id=3, agent_slug="researcher", on_behalf_of_id=9, run_id="r-77")

    claims = agent_token_verify(token, workspace=acme)

    assert (claims.workspace, claims.agent_id, claims.agent_slug) == ("acme", 3, "researcher")
    assert (claims.on_behalf_of_id, claims.run_id) == (9, "r-77")
    assert (claims.expires_at - claims.issued_at).total_seconds() == settings.AGENT_TOKEN_TTL
    header = jwt.get_unverified_header(token)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert payload["iss"] == "aisaas"
    assert payload["aud"] == "aisaas-agent"
    assert payload["sub"] == "agent:3"
    assert payload["nbf"] == payload["iat"]
    assert str(uuid.UUID(payload["jti"])).replace("-", "") == payload["jti"]


def test_the_hand_built_claim_set_passes_untouched(acme: Workspace) -> None:
    """The baseline of every forged token below."""
    claims = agent_token_verify(_signed(_claims(acme)), workspace=acme)

    assert (claims.agent_id, claims.on_behalf_of_id, claims.run_id) == (7, 42, "run-1")


def test_each_token_gets_its_own_jti(acme: Workspace) -> None:
    first, second = _issue(acme), _issue(acme)

    assert agent_token_verify(first, workspace=acme).jti != (
        agent_token_verify(second, workspace=acme).jti
    )


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_an_unsigned_alg_none_token_is_refused(acme: Workspace, alg: str) -> None:
    token = f"{_segment({'alg': alg, 'typ': 'JWT'})}.{_segment(_claims(acme))}."

    assert _refusal(token, acme).reason == "bad_signature"


def test_an_alg_none_token_carrying_a_real_signature_is_refused(acme: Workspace) -> None:
    signing_input = f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(_claims(acme))}"
    token = f"{signing_input}.{_hmac_signature(signing_input, signing_key())}"

    assert _refusal(token, acme).reason == "bad_signature"


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(settings.SECRET_KEY.encode(), id="raw-SECRET_KEY"),
        pytest.param(hashlib.sha256(b"an attacker's guess").digest(), id="another-key"),
    ],
)
def test_a_token_signed_with_another_key_is_refused(acme: Workspace, key: bytes) -> None:
    assert _refusal(_signed(_claims(acme), key=key), acme).reason == "bad_signature"


def test_a_token_signed_under_another_agent_token_secret_is_refused(acme: Workspace) -> None:
    with override_settings(AGENT_TOKEN_SECRET="another-deployment-" + "x" * 32):
        foreign = _issue(acme)

    assert _refusal(foreign, acme).reason == "bad_signature"


@pytest.mark.parametrize("alg", ["RS256", "HS512", "HS384", "ES256", "PS256"])
def test_a_header_naming_another_algorithm_is_refused(acme: Workspace, alg: str) -> None:
    """An HS256 signature under our key, behind a header that names another algorithm."""
    signing_input = f"{_segment({'alg': alg, 'typ': 'JWT'})}.{_segment(_claims(acme))}"
    token = f"{signing_input}.{_hmac_signature(signing_input, signing_key())}"

    assert _refusal(token, acme).reason == "bad_signature"


def test_a_genuine_hs512_token_under_our_key_is_refused(acme: Workspace) -> None:
    signing_input = f"{_segment({'alg': 'HS512', 'typ': 'JWT'})}.{_segment(_claims(acme))}"
    token = f"{signing_input}.{_hmac_signature(signing_input, signing_key(), hashlib.sha512)}"

    assert _refusal(token, acme).reason == "bad_signature"


def test_an_expired_token_is_refused_past_the_leeway(acme: Workspace) -> None:
    token = _issue(acme, ttl_seconds=60)

    with time_machine.travel(time.time() + 60 + LEEWAY_SECONDS - 2, tick=False):
        agent_token_verify(token, workspace=acme)  # within the leeway
    with time_machine.travel(time.time() + 60 + LEEWAY_SECONDS + 2, tick=False):
        assert _refusal(token, acme).reason == "expired"


def test_a_token_whose_exp_has_passed_is_refused(acme: Workspace) -> None:
    now = int(time.time())
    token = _signed(_claims(acme, iat=now - 120, nbf=now - 120, exp=now - 60))

    assert _refusal(token, acme).reason == "expired"


def test_a_token_not_valid_yet_is_refused_beyond_the_leeway(acme: Workspace) -> None:
    now = int(time.time())
    soon = _signed(_claims(acme, nbf=now + LEEWAY_SECONDS - 2))
    later = _signed(_claims(acme, nbf=now + 60))

    agent_token_verify(soon, workspace=acme)
    assert _refusal(later, acme).reason == "not_yet_valid"


def test_a_token_issued_in_the_future_is_refused(acme: Workspace) -> None:
    now = int(time.time())
    token = _signed(_claims(acme, iat=now + 60, nbf=now, exp=now + 300))

    assert _refusal(token, acme).reason == "not_yet_valid"


@pytest.mark.parametrize(
    "audience",
    ["aisaas-internal-api", "AISAAS-AGENT", ["aisaas-agent", "someone-else"], ["aisaas-agent"]],
    ids=["another", "case", "list-with-ours", "list-of-ours"],
)
def test_a_token_for_another_audience_is_refused(acme: Workspace, audience: Any) -> None:
    assert _refusal(_signed(_claims(acme, aud=audience)), acme).reason == "wrong_audience"


def test_the_audience_follows_the_setting(acme: Workspace) -> None:
    with override_settings(AGENT_TOKEN_AUDIENCE="aisaas-mcp"):
        mcp_token = _issue(acme)
        agent_token_verify(mcp_token, workspace=acme)

    assert _refusal(mcp_token, acme).reason == "wrong_audience"


@pytest.mark.parametrize("issuer", ["someone-else", "AISAAS", ""])
def test_a_token_from_another_issuer_is_refused(acme: Workspace, issuer: str) -> None:
    assert _refusal(_signed(_claims(acme, iss=issuer)), acme).reason == "wrong_issuer"


@pytest.mark.parametrize(
    "claim",
    [
        "exp",
        "nbf",
        "iat",
        "aud",
        "iss",
        "jti",
        "sub",
        "workspace",
        "agent_id",
        "agent_slug",
        "on_behalf_of",
        "run_id",
    ],
)
def test_a_token_missing_a_required_claim_is_refused(acme: Workspace, claim: str) -> None:
    assert _refusal(_signed(_claims(acme, **{claim: DROP})), acme).reason == "malformed"


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": "never"},
        {"iat": "yesterday"},
        {"aud": ""},
        {"agent_id": "7"},
        {"agent_id": True},
        {"on_behalf_of": None},
        {"run_id": 1},
        {"workspace": ["acme"]},
        {"jti": 12345},
        {"sub": "agent:8"},
        {"sub": "user:42"},
    ],
    ids=repr,
)
def test_a_token_with_a_mistyped_or_inconsistent_claim_is_refused(
    acme: Workspace, changes: dict[str, Any]
) -> None:
    assert _refusal(_signed(_claims(acme, **changes)), acme).reason == "malformed"


def test_a_signed_token_living_longer_than_we_ever_issue_is_refused(acme: Workspace) -> None:
    now = int(time.time())
    token = _signed(_claims(acme, iat=now, nbf=now, exp=now + MAX_TTL_SECONDS + 1))

    assert _refusal(token, acme).reason == "malformed"


def test_a_token_of_another_workspace_is_refused(acme: Workspace, globex: Workspace) -> None:
    token = _issue(globex, run_id="globex-run-secret")

    error = _refusal(token, acme)

    assert error.reason == "wrong_workspace"
    assert agent_token_verify(token, workspace=globex).workspace == "globex"
    for leaked in ("globex", "globex-run-secret", token):
        assert leaked not in error.message


def test_a_revoked_token_is_refused_when_replayed(
    acme: Workspace, fresh_redis: redis.Redis
) -> None:
    token = _issue(acme, ttl_seconds=120)
    claims = agent_token_verify(token, workspace=acme)

    agent_token_revoke(claims.jti, workspace=acme, expires_at=claims.expires_at)

    assert _refusal(token, acme).reason == "revoked"
    key = f"acme:agent_token:revoked:{claims.jti}"
    assert 0 < fresh_redis.ttl(key) <= 120 + LEEWAY_SECONDS


def test_revoking_an_expired_token_stores_nothing(
    acme: Workspace, fresh_redis: redis.Redis
) -> None:
    now = int(time.time())
    claims = _claims(acme, iat=now - 600, nbf=now - 600, exp=now - 60)

    agent_token_revoke(claims["jti"], workspace=acme, expires_at=_as_datetime(claims["exp"]))

    assert fresh_redis.keys("acme:agent_token:*") == []


def test_a_revocation_in_one_workspace_does_not_reach_another(
    acme: Workspace, globex: Workspace
) -> None:
    """The same jti in globex (forged or not) is not revoked by acme's revocation."""
    jti = uuid.uuid4().hex
    acme_token = _signed(_claims(acme, jti=jti))
    globex_token = _signed(_claims(globex, jti=jti))

    agent_token_revoke(jti, workspace=acme, expires_at=_as_datetime(int(time.time()) + 300))

    assert _refusal(acme_token, acme).reason == "revoked"
    agent_token_verify(globex_token, workspace=globex)


def test_revoking_a_run_refuses_every_token_issued_for_it(
    acme: Workspace, fresh_redis: redis.Redis
) -> None:
    first, second = _issue(acme, run_id="run-a"), _issue(acme, run_id="run-a")
    other_run = _issue(acme, run_id="run-b")

    agent_token_revoke_run("run-a", workspace=acme)

    assert _refusal(first, acme).reason == "revoked"
    assert _refusal(second, acme).reason == "revoked"
    agent_token_verify(other_run, workspace=acme)
    assert fresh_redis.ttl("acme:agent_token:revoked_run:run-a") > MAX_TTL_SECONDS
    with time_machine.travel(time.time() + LEEWAY_SECONDS + 2, tick=False):
        restarted = _issue(acme, run_id="run-a")
        agent_token_verify(restarted, workspace=acme)


def test_a_ttl_of_an_hour_is_capped_at_fifteen_minutes(acme: Workspace) -> None:
    token = _issue(acme, ttl_seconds=3600)

    claims = agent_token_verify(token, workspace=acme)

    assert (claims.expires_at - claims.issued_at).total_seconds() == MAX_TTL_SECONDS == 900
    with time_machine.travel(time.time() + MAX_TTL_SECONDS + LEEWAY_SECONDS + 2, tick=False):
        assert _refusal(token, acme).reason == "expired"


def test_the_ttl_setting_is_capped_too(acme: Workspace) -> None:
    with override_settings(AGENT_TOKEN_TTL=7200):
        claims = agent_token_verify(_issue(acme), workspace=acme)

    assert (claims.expires_at - claims.issued_at).total_seconds() == MAX_TTL_SECONDS


@pytest.mark.parametrize("ttl", [0, -60])
def test_a_ttl_that_is_not_positive_is_a_programming_error(acme: Workspace, ttl: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        _issue(acme, ttl_seconds=ttl)


@pytest.mark.parametrize(
    "changes",
    [
        {"on_behalf_of": 1},
        {"agent_id": 1, "sub": "agent:1"},
        {"run_id": "someone-elses-run"},
        {"exp": "LATER"},  # replaced at run time: ids must not depend on the clock (xdist)
        {"aud": "aisaas-agent", "workspace": "globex"},
    ],
    ids=repr,
)
def test_a_tampered_payload_under_the_old_signature_is_refused(
    acme: Workspace, globex: Workspace, changes: dict[str, Any]
) -> None:
    header, payload, signature = _issue(acme).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if changes.get("exp") == "LATER":
        changes = {"exp": claims["exp"] + 900}
    tampered = f"{header}.{_segment({**claims, **changes})}.{signature}"

    target = globex if changes.get("workspace") == "globex" else acme
    assert _refusal(tampered, target).reason == "bad_signature"


def test_a_tampered_header_under_the_old_signature_is_refused(acme: Workspace) -> None:
    _, payload, signature = _issue(acme).split(".")
    header = _segment({"alg": "HS256", "typ": "JWT", "kid": "../../etc/passwd"})

    assert _refusal(f"{header}.{payload}.{signature}", acme).reason == "bad_signature"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not-a-token",
        "a.b.c",
        "...",
        "a.b",
        "a.b.c.d",
        "Bearer " + "x" * 20,
        "é.é.é",
        f"{_segment(b'not json')}.{_segment({'sub': 'x'})}.sig",
        f"{_segment([1, 2])}.{_segment({'sub': 'x'})}.sig",
        "x" * 10_000,
        None,
        b"bytes.are.no-token",
        12345,
    ],
    ids=repr,
)
def test_garbage_is_refused_as_malformed(acme: Workspace, garbage: Any) -> None:
    assert _refusal(garbage, acme).reason == "malformed"


def test_a_payload_that_is_not_an_object_is_refused_even_when_signed(acme: Workspace) -> None:
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT'})}.{_segment([1, 2, 3])}"
    token = f"{signing_input}.{_hmac_signature(signing_input, signing_key())}"

    assert _refusal(token, acme).reason == "malformed"


def test_with_redis_unreachable_the_token_is_refused(acme: Workspace) -> None:
    token = _issue(acme)

    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        error = _refusal(token, acme)

    assert (error.reason, error.status) == ("unavailable", 503)
    agent_token_verify(token, workspace=acme)  # Redis back: accepted again


def test_refusals_are_application_errors_that_name_their_reason(acme: Workspace) -> None:
    error = _refusal(_signed(_claims(acme), key=b"k" * 32), acme)

    assert isinstance(error, ApplicationError)
    assert (error.status, error.code, error.extra) == (
        401,
        "invalid_agent_token",
        {"reason": "bad_signature"},
    )


def test_the_signing_key_is_derived_never_a_raw_secret() -> None:
    assert signing_key() != settings.SECRET_KEY.encode()
    assert len(signing_key()) == 32
    with override_settings(AGENT_TOKEN_SECRET="s" * 40):
        dedicated = signing_key()
    assert dedicated not in (b"s" * 40, signing_key())
