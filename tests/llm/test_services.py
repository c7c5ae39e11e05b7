"""The gateway through its Django glue: `llm_chat` builds the scope from the workspace (plan,
AI settings, overrides, BYOK), runs on real Redis, and leaves call log and trace rows."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator

import pytest
from django.conf import settings

from apps.llm import adapters
from apps.llm.core.errors import BudgetExceededError
from apps.llm.services import llm_budget_usage, llm_chat
from apps.traces.models import LlmCallLog, LlmTrace
from apps.traces.services import call_records_flush
from apps.workspaces.ai import ai_settings_get
from apps.workspaces.models import PlanCode, User, Workspace
from tests.fakes import FakeAnthropicServer, FakeOpenAIServer
from tests.gateway_support import ask, gateway_settings, unique, user_actor

pytestmark = pytest.mark.django_db

PLATFORM_KEY = "sk-platform-0123456789abcdef"


@pytest.fixture(autouse=True)
def _offline_glue() -> Iterator[None]:
    """No platform keys: every alias answers with the local model, at once."""
    with gateway_settings():
        yield


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as server:
        yield server


@pytest.fixture
def fresh_workspace(acme: Workspace, fresh_redis: object) -> Workspace:
    """acme with a clean Redis namespace, so today's budget counters start at zero (Redis
    outlives the test transaction: its keys are deleted before and after)."""
    return acme


def test_an_offline_call_leaves_one_call_log_row_and_one_trace_row(
    acme: Workspace, owner: User
) -> None:
    # given a prompt no other test sends
    prompt = unique("Summarise our onboarding checklist")

    # when
    response = llm_chat(
        workspace=acme,
        actor=user_actor(owner),
        feature="chat.test",
        request=ask(prompt),
        user=owner,
    )
    call_records_flush()

    # then the answer is the offline model's, priced at the nominal rate
    assert (response.provider, response.model, response.offline) == ("local", "local-smart", True)
    usage = response.usage
    nominal = (
        usage.input_tokens * settings.LLM_NOMINAL_INPUT_MICROS_PER_MTOK
        + usage.output_tokens * settings.LLM_NOMINAL_OUTPUT_MICROS_PER_MTOK
    ) / 1_000_000
    assert response.cost_micros == round(nominal) > 0
    # and exactly one call log row and one trace row describe it
    call = LlmCallLog.objects.get(trace_id=response.trace_id)
    assert call.workspace_id == acme.pk
    assert (call.actor_type, call.actor_id) == ("user", str(owner.pk))
    assert (call.feature, call.alias, call.provider, call.model) == (
        "chat.test",
        "smart",
        "local",
        "local-smart",
    )
    assert call.offline is True
    assert call.status == "ok"
    assert (call.input_tokens, call.output_tokens) == (usage.input_tokens, usage.output_tokens)
    assert call.input_tokens > 0
    assert call.output_tokens > 0
    assert call.cost_micros == response.cost_micros
    assert call.request_id == response.request_id
    assert (call.cached, call.fallback_used, call.byok) == (False, False, False)
    trace = LlmTrace.objects.get(trace_id=response.trace_id)
    assert trace.call_id == call.pk
    assert trace.workspace_id == acme.pk
    assert trace.messages[0]["content"] == prompt
    assert trace.response == response.text


def test_an_identical_request_in_globex_is_not_served_from_acmes_cache(
    acme: Workspace, globex: Workspace, owner: User, outsider: User
) -> None:
    # given acme asked something twice: the second answer came from acme's exact cache
    prompt = unique("What is our refund policy?")
    first = llm_chat(workspace=acme, actor=user_actor(owner), feature="chat", request=ask(prompt))
    again = llm_chat(workspace=acme, actor=user_actor(owner), feature="chat", request=ask(prompt))
    assert (first.cached, again.cached, again.cost_micros) == (False, True, 0)

    # when globex sends the byte-identical request
    theirs = llm_chat(
        workspace=globex, actor=user_actor(outsider), feature="chat", request=ask(prompt)
    )

    # then globex's answer is its own: produced, charged and logged under globex
    assert theirs.cached is False
    assert theirs.cost_micros > 0
    call_records_flush()
    call = LlmCallLog.objects.get(trace_id=theirs.trace_id)
    assert (call.workspace_id, call.cached) == (globex.pk, False)


def test_sync_calls_share_one_gateway_and_reuse_provider_connections(
    acme: Workspace, owner: User, fake_openai: FakeOpenAIServer
) -> None:
    # given the platform's OpenAI key, served by the fake
    with gateway_settings(OPENAI_API_KEY=PLATFORM_KEY, OPENAI_BASE_URL=fake_openai.base_url):
        # when sync code calls three times
        responses = [
            llm_chat(
                workspace=acme,
                actor=user_actor(owner),
                feature="chat",
                request=ask(unique(f"question {n}")),
            )
            for n in range(3)
        ]

    # then each call is one request (no connection left over from a dead event loop that
    # fails and is silently retried), and sync calls run on one loop with one gateway
    assert [r.provider for r in responses] == ["openai"] * 3
    assert len(fake_openai.requests) == 3
    call_records_flush()
    calls = LlmCallLog.objects.filter(trace_id__in=[r.trace_id for r in responses])
    assert [c.attempts for c in calls] == [[], [], []]
    assert sum(1 for loop in list(adapters._gateways) if not loop.is_closed()) <= 1


def test_run_sync_refuses_to_block_an_event_loop() -> None:
    # given async code, which must await the gateway instead
    async def from_async_code() -> None:
        adapters.run_sync(asyncio.sleep(0))

    # when / then
    with pytest.raises(RuntimeError, match="await the async variant"):
        asyncio.run(from_async_code())


def test_run_sync_carries_the_callers_context_variables() -> None:
    # given a context variable set by the caller (as django-structlog binds a request id)
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    request_id.set("req-42")

    async def read() -> str:
        return request_id.get()

    # when / then the coroutine, run on the gateway's loop thread, sees it
    assert adapters.run_sync(read()) == "req-42"


def test_a_model_override_routes_the_alias_for_that_workspace_only(
    acme: Workspace,
    globex: Workspace,
    owner: User,
    outsider: User,
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
) -> None:
    # given both vendors configured, and acme overriding `smart` to OpenAI's gpt-4.1
    ai = ai_settings_get(workspace=acme)
    ai.model_overrides = {"smart": {"provider": "openai", "model": "gpt-4.1"}}
    ai.save()
    keys = {
        "ANTHROPIC_API_KEY": PLATFORM_KEY,
        "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
        "OPENAI_API_KEY": PLATFORM_KEY,
        "OPENAI_BASE_URL": fake_openai.base_url,
    }
    with gateway_settings(**keys):
        # when each workspace asks `smart`
        ours = llm_chat(
            workspace=acme, actor=user_actor(owner), feature="chat", request=ask(unique("hi"))
        )
        theirs = llm_chat(
            workspace=globex, actor=user_actor(outsider), feature="chat", request=ask(unique("hi"))
        )

    # then acme's goes to OpenAI's gpt-4.1, globex's to the default primary
    assert (ours.provider, ours.model, ours.fallback_used) == ("openai", "gpt-4.1", False)
    assert [r.body["model"] for r in fake_openai.requests] == ["gpt-4.1"]
    assert (theirs.provider, theirs.model) == ("anthropic", "claude-sonnet-4-6")
    assert [r.body["model"] for r in fake_anthropic.requests] == ["claude-sonnet-4-6"]


def test_a_small_daily_token_limit_denies_the_call_with_a_typed_error(
    acme: Workspace, owner: User
) -> None:
    # given acme's AI settings cap its tokens per day far below one call's worst case
    ai = ai_settings_get(workspace=acme)
    ai.daily_token_limit = 100
    ai.save()

    # when
    with pytest.raises(BudgetExceededError) as denied:
        llm_chat(
            workspace=acme,
            actor=user_actor(owner),
            feature="chat.budget",
            request=ask(unique("Write a long essay")),
        )

    # then the edge can answer 402 and say which scope refused
    assert denied.value.status == 402
    assert denied.value.denial.scope == "workspace_day_tokens"
    assert denied.value.denial.limit == 100
    assert "workspace_day_tokens" in denied.value.message
    # and the call log does not claim an answer
    call_records_flush()
    rows = LlmCallLog.objects.filter(workspace=acme, feature="chat.budget")
    assert [(r.status, r.error_code) for r in rows] == [("error", "budget_exceeded")]


def test_limits_come_from_the_plan_unless_the_ai_settings_override_them(
    acme: Workspace, owner: User
) -> None:
    # given acme on the free plan with no overrides
    def limits() -> dict[str, int]:
        return {u.name: u.limit for u in llm_budget_usage(workspace=acme, user=owner)}

    assert limits() == {"workspace_day_tokens": 50_000, "user_day_requests": 500}

    # when acme moves to pro
    acme.plan = PlanCode.PRO
    acme.save()

    # then the pro defaults apply
    assert limits() == {"workspace_day_tokens": 2_000_000, "user_day_requests": 5_000}

    # when its AI settings set their own limits
    ai = ai_settings_get(workspace=acme)
    ai.daily_token_limit = 1234
    ai.user_daily_request_limit = 7
    ai.save()

    # then those win
    assert limits() == {"workspace_day_tokens": 1234, "user_day_requests": 7}

    # when a limit is 0 (AI switched off), it is a limit, not "use the plan's"
    ai.daily_token_limit = 0
    ai.save()
    assert limits()["workspace_day_tokens"] == 0
    with pytest.raises(BudgetExceededError):
        llm_chat(workspace=acme, actor=user_actor(owner), feature="chat", request=ask("hi"))


def test_budget_usage_reports_used_reserved_and_limit_per_scope(
    fresh_workspace: Workspace, owner: User
) -> None:
    # given a workspace that has not called a model today
    before = {u.name: u for u in llm_budget_usage(workspace=fresh_workspace, user=owner)}
    assert [(u.used, u.reserved) for u in before.values()] == [(0, 0), (0, 0)]

    # when the owner makes one call
    response = llm_chat(
        workspace=fresh_workspace,
        actor=user_actor(owner),
        feature="chat",
        request=ask(unique("hello")),
        user=owner,
    )

    # then its actual tokens and one request are used, and nothing stays reserved
    after = {u.name: u for u in llm_budget_usage(workspace=fresh_workspace, user=owner)}
    tokens, requests = after["workspace_day_tokens"], after["user_day_requests"]
    assert (tokens.used, tokens.reserved, tokens.limit) == (
        response.usage.total_tokens,
        0,
        50_000,
    )
    assert (requests.used, requests.reserved, requests.limit) == (1, 0, 500)
    assert (tokens.unit, tokens.kind, requests.unit, requests.kind) == (
        "tokens",
        "budget",
        "requests",
        "rate",
    )
    assert tokens.resets_at is not None
    assert 0 < tokens.fraction < 0.1


def test_a_user_past_their_daily_requests_is_rate_limited(
    fresh_workspace: Workspace, owner: User
) -> None:
    # given one request a day per user, already used
    ai = ai_settings_get(workspace=fresh_workspace)
    ai.user_daily_request_limit = 1
    ai.save()
    actor = user_actor(owner)
    llm_chat(workspace=fresh_workspace, actor=actor, feature="chat", request=ask("one"), user=owner)

    # when
    with pytest.raises(BudgetExceededError) as denied:
        llm_chat(
            workspace=fresh_workspace, actor=actor, feature="chat", request=ask("two"), user=owner
        )

    # then it is a rate limit (429), naming the user scope
    assert denied.value.status == 429
    assert (denied.value.denial.scope, denied.value.denial.used) == ("user_day_requests", 1)
