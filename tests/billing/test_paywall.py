"""The paywall: at zero credit the chat shows a top-up/upgrade panel instead of the composer
(owners and admins get the link, members are told to ask an admin), the chat socket refuses
with a clear message, and nobody outside the workspace sees any of it."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest
from django_tenants.utils import schema_context

from apps.agents.chat.answer import OUT_OF_CREDITS, refusal_text
from apps.agents.chat.services import conversation_create
from apps.billing.ledger import ledger_post
from apps.llm.core.errors import BudgetExceededError, Denial
from apps.workspaces.models import User, Workspace
from tests.api import conftest as api_fixtures
from tests.api.conftest import MakeKey
from tests.asgi_server import run_committed
from tests.billing.conftest import MakeWorkspace, balance_set
from tests.conftest import host_client
from tests.fakes import FakeOpenAIServer

# The /v1 API on daphne, its upstream fake and committed API keys (tests/api's fixtures).
api_server = api_fixtures.api_server
upstream = api_fixtures.upstream
make_key = api_fixtures.make_key
http = api_fixtures.http


def _page(workspace: Workspace, user: User) -> str:
    with schema_context(workspace.schema_name):
        conversation = conversation_create(user=user)
    response = host_client(f"{workspace.slug}.localhost", user).get(f"/chat/c/{conversation.pk}/")
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def owner_and_member(
    workspace: Workspace, owner: User, member: User
) -> tuple[Workspace, User, User]:
    """acme (a free plan's month of credit, a clean Redis namespace), its owner and a member."""
    return workspace, owner, member


def test_with_credit_the_composer_shows(owner_and_member: tuple[Workspace, User, User]) -> None:
    workspace, owner, _ = owner_and_member
    html = _page(workspace, owner)
    assert 'data-testid="composer"' in html
    assert 'data-testid="credits-panel"' not in html


def test_at_zero_owners_get_the_top_up_panel_instead_of_the_composer(
    owner_and_member: tuple[Workspace, User, User],
) -> None:
    workspace, owner, _ = owner_and_member
    balance_set(workspace, 0)
    html = _page(workspace, owner)
    assert 'data-testid="credits-panel"' in html
    assert "Out of credits — top up or upgrade." in html
    assert 'href="/billing/" data-testid="top-up"' in html
    assert 'data-testid="composer"' not in html


def test_at_zero_members_are_told_to_ask_an_admin(
    owner_and_member: tuple[Workspace, User, User],
) -> None:
    workspace, _, member = owner_and_member
    balance_set(workspace, 0)
    html = _page(workspace, member)
    assert 'data-testid="credits-panel"' in html
    assert "Ask a workspace owner or admin" in html
    assert 'data-testid="top-up"' not in html
    assert 'data-testid="composer"' not in html


def test_below_a_tenth_of_the_monthly_credit_owners_are_warned_and_can_still_chat(
    owner_and_member: tuple[Workspace, User, User],
) -> None:
    # given a free workspace (1,000 credits a month) with 99 credits left, then with 100
    workspace, owner, member = owner_and_member
    balance_set(workspace, 99_000)
    low_owner, low_member = _page(workspace, owner), _page(workspace, member)
    balance_set(workspace, 100_000)
    enough = _page(workspace, owner)

    # then below 10 % the owner gets a banner linking to billing above a working composer, the
    # member is told to ask an admin; at 10 % there is no banner
    assert 'data-testid="low-credits-banner"' in low_owner
    assert "Credits are running low: 99 left." in low_owner
    assert 'href="/billing/" data-testid="low-credits-top-up"' in low_owner
    assert 'data-testid="composer"' in low_owner
    assert "Ask a workspace owner or admin to top up before answers stop." in low_member
    assert 'data-testid="low-credits-top-up"' not in low_member
    assert 'data-testid="composer"' in low_member
    assert 'data-testid="low-credits-banner"' not in enough


def test_the_low_credit_banner_follows_the_setting_and_the_workspaces_own_balance(
    owner_and_member: tuple[Workspace, User, User],
    other_workspace: Workspace,
    settings: Any,
) -> None:
    # given a workspace with 300 credits of 1,000 and another with all of its month's credit
    workspace, owner, _ = owner_and_member
    other, other_owner = other_workspace, User.objects.get(email="owner@globex.test")
    balance_set(workspace, 300_000)

    # when the warning starts at 50 % instead of 10 %
    settings.BILLING_LOW_CREDIT_PERCENT = 50

    # then the low workspace is warned and the full one is not
    assert "Credits are running low: 300 left." in _page(workspace, owner)
    assert 'data-testid="low-credits-banner"' not in _page(other, other_owner)


def test_below_the_smallest_calls_worst_case_is_out_of_credits(
    owner_and_member: tuple[Workspace, User, User],
) -> None:
    workspace, owner, _ = owner_and_member
    balance_set(workspace, 0)
    ledger_post(
        workspace_id=workspace.pk, delta_micros=50, reason="adjustment", idempotency_key="crumb"
    )
    assert 'data-testid="credits-panel"' in _page(workspace, owner)


def test_an_outsider_sees_nothing_of_the_workspace(
    owner_and_member: tuple[Workspace, User, User], outsider: User
) -> None:
    workspace, owner, _ = owner_and_member
    balance_set(workspace, 0)
    with schema_context(workspace.schema_name):
        conversation = conversation_create(user=owner)
    client = host_client(f"{workspace.slug}.localhost", outsider)
    for path in ("/chat/", f"/chat/c/{conversation.pk}/"):
        response = client.get(path)
        assert response.status_code in (302, 403, 404)
        assert b"credits-panel" not in response.content


def test_the_chat_socket_says_out_of_credits() -> None:
    denial = Denial(
        scope="credit_balance",
        kind="budget",
        limit=0,
        used=0,
        reserved=0,
        requested=16_000,
        unit="micro-dollars",
    )
    assert refusal_text(BudgetExceededError(denial)) == OUT_OF_CREDITS
    assert "/billing/" in OUT_OF_CREDITS


def test_the_api_answers_insufficient_quota_at_zero_without_calling_the_model(
    make_committed_workspace: MakeWorkspace,
    make_key: MakeKey,
    http: httpx.Client,
    upstream: FakeOpenAIServer,
) -> None:
    workspace = make_committed_workspace()
    run_committed(lambda: balance_set(workspace, 0))
    key = make_key(workspace.slug)
    before = len(upstream.requests)

    response = http.post(
        "/chat/completions",
        headers={"authorization": f"Bearer {key.secret}"},
        json={"model": "smart", "messages": [{"role": "user", "content": "hello"}]},
    )

    # OpenAI's quota answer (README, "Quota errors: 429, not 402"), never retried by SDKs
    assert response.status_code == 429
    assert response.headers["x-should-retry"] == "false"
    assert response.headers["x-aisaas-quota-scope"] == "credit_balance"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "Out of credits" in error["message"]
    assert len(upstream.requests) == before
