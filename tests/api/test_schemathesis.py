"""Schemathesis fuzzes the /v1 API from the OpenAPI document the server publishes: valid and
invalid bodies, headers and methods. Every answer must be documented (status and body shape)
and none may be a 5xx other than the documented provider failures (502/503).

`make test` runs a short pass (FUZZ_EXAMPLES, default 25 per operation and mode); `make fuzz-api`
a long one (500).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx2 as httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import ignored_auth, positive_data_acceptance

from apps.workspaces.api_keys import API_KEY_SCOPES
from tests.asgi_server import AsgiServer

from .conftest import MakeKey

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
DOCUMENTED_5XX = {502, 503}  # the provider failed after retry and fallback


@pytest.fixture
def api_schema(
    api_server: AsgiServer,
    make_key: MakeKey,
    workspace_limits: Callable[..., None],
    forget_outcomes: None,
    forget_documents: None,
) -> Any:
    # globex, with room for the worst case of every fuzzed call, and a key with a high limit
    # and every scope (outcomes and documents too: not default ones)
    workspace_limits("globex", daily_token_limit=10**12)
    key = make_key("globex", scopes=API_KEY_SCOPES, rate_limit_per_minute=100_000)
    document = httpx.get(api_server.url("/api/schema/"), params={"format": "json"}).json()
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(
        base_url=api_server.url("/"),
        headers={"authorization": f"Bearer {key.secret}"},
        request_timeout=30,
    )
    return schema.include(path_regex=r"^/v1/")


def test_the_api_answers_every_generated_request_as_documented(api_schema: Any) -> None:
    # schemathesis' pytest integration (`from_fixture`) does not load under this pytest, so
    # each operation's Hypothesis strategy is driven here directly.
    statuses: Counter[int] = Counter()
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call()
            statuses[response.status_code] += 1
            assert response.status_code < 500 or response.status_code in DOCUMENTED_5XX, (
                case.method,
                case.path,
                response.status_code,
                response.text[:500],
            )
            # Excluded: requests the schema allows can still be refused (a tool message without
            # its tool_call_id, max_tokens above the workspace's cap), and the configured key
            # replaces the bad credentials schemathesis generates (401s: test_openai_api.py).
            case.validate_response(
                response, excluded_checks=[positive_data_acceptance, ignored_auth]
            )

        fuzz()
    print(
        f"schemathesis: {sum(statuses.values())} requests, by status: {dict(sorted(statuses.items()))}"
    )
    assert sum(statuses.values()) >= 3 * EXAMPLES // 2
    assert not [code for code in statuses if code >= 500 and code not in DOCUMENTED_5XX]
