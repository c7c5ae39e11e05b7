"""The gateway's public face: the one module other apps import from `apps.llm` (besides
`apps.llm.prompts` for prompt files and `apps.llm.ports` for plugging in at ready()).

Business code names an alias and a feature; everything else — routing, budgets, cache,
fallback, metering, traces — happens in the gateway. Requests, events, errors and the scope
builder are re-exported here, so the modules behind it can move freely; the import contract
(pyproject.toml, `make lint`) refuses any other `apps.llm` import from outside it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.exceptions import RedisError

from apps.workspaces.models import User, Workspace

from .adapters import after_call_writes_replay, gateway, run_sync
from .config import call_scope_for, limits_for, platform_providers, routing_table
from .core.budget import Scope, ScopeUsage
from .core.call import ProviderClock
from .core.context import (
    Actor,
    CallRecord,
    CallScope,
    CreditLimit,
    credit_charge,
    credit_scope,
    daily_scopes,
)
from .core.credit_hash import CreditHash
from .core.errors import (
    CREDIT_BALANCE,
    BudgetExceededError,
    Denial,
    GatewayError,
    InvalidRequestError,
    ProviderError,
    ProviderUnavailableError,
    ServiceUnavailableError,
    StructuredOutputError,
    UnknownAliasError,
)
from .core.gateway.stages import REDIS_PART
from .core.routing import LOCAL
from .core.tokens import count_tokens, decode_tokens, token_pieces
from .core.types import (
    ChatRequest,
    ChatResponse,
    DoneEvent,
    EmbedRequest,
    EmbedResponse,
    ErrorEvent,
    Message,
    ResponseFormat,
    StatusEvent,
    StreamEvent,
    ThinkingEvent,
    TokenEvent,
    Tool,
    ToolCall,
    ToolResultEvent,
    ToolUseEvent,
    Usage,
)
from .ports import PlanLimits
from .stored_responses import (
    access_stored_response,
    all_workspaces_stored_responses_expire,
    stored_response_delete,
    stored_response_save,
)
from .structured import parse_response, response_format_for
from .synonyms import model_resolve, model_synonym_delete, model_synonym_set, model_synonyms

__all__ = [
    "CREDIT_BALANCE",
    "Actor",
    "BudgetExceededError",
    "CallRecord",
    "CallScope",
    "ChatRequest",
    "ChatResponse",
    "CreditHash",
    "CreditLimit",
    "CreditUsage",
    "Denial",
    "DoneEvent",
    "EmbedRequest",
    "EmbedResponse",
    "ErrorEvent",
    "GatewayError",
    "InvalidRequestError",
    "Message",
    "PlanLimits",
    "ProviderClock",
    "ProviderError",
    "ProviderUnavailableError",
    "ResponseFormat",
    "Scope",
    "ScopeUsage",
    "ServiceUnavailableError",
    "StatusEvent",
    "StreamEvent",
    "StructuredOutputError",
    "ThinkingEvent",
    "TokenEvent",
    "Tool",
    "ToolCall",
    "ToolResultEvent",
    "ToolUseEvent",
    "UnknownAliasError",
    "Usage",
    "access_stored_response",
    "alias_is_offline",
    "alias_names",
    "all_workspaces_stored_responses_expire",
    "allm_chat",
    "allm_count",
    "allm_embed",
    "allm_scope_usage",
    "call_scope_for",
    "count_tokens",
    "credit_charge",
    "daily_scopes",
    "decode_tokens",
    "embedding_model_for",
    "limits_for",
    "llm_after_call_replay",
    "llm_budget_usage",
    "llm_chat",
    "llm_credit_usage",
    "llm_embed",
    "llm_reservations_janitor",
    "llm_stream",
    "model_resolve",
    "model_synonym_delete",
    "model_synonym_set",
    "model_synonyms",
    "parse_response",
    "response_format_for",
    "routing_table",
    "run_sync",
    "stored_response_delete",
    "stored_response_save",
    "token_pieces",
]


@asynccontextmanager
async def _redis_answers() -> AsyncIterator[None]:
    """Redis failing or timing out in the block is the gateway's 503 naming it."""
    try:
        yield
    except RedisError as exc:
        raise ServiceUnavailableError(REDIS_PART) from exc


def alias_names(kind: str | None = None) -> list[str]:
    """The aliases of the routing table (all, or those of one kind: "chat", "embed")."""
    return routing_table().names(kind)


def alias_is_offline(alias: str) -> bool:
    """Whether the offline local model answers `alias` with the platform's keys (the UI says so).
    An alias no provider serves is not offline: using it fails, and says why."""
    try:
        routes = routing_table().resolve(alias, configured=frozenset(platform_providers()))
    except GatewayError:
        return False
    return routes.primary.provider == LOCAL


def llm_chat(
    *,
    workspace: Workspace,
    actor: Actor,
    feature: str,
    request: ChatRequest,
    user: User | None = None,
    request_id: str | None = None,
) -> ChatResponse:
    """One model answer for `workspace` (sync code: views, tasks, commands)."""
    scope = call_scope_for(
        workspace=workspace, actor=actor, feature=feature, user=user, request_id=request_id
    )
    return run_sync(allm_chat(scope=scope, request=request))


async def allm_chat(
    *, scope: CallScope, request: ChatRequest, clock: ProviderClock | None = None
) -> ChatResponse:
    """One model answer (async code); build `scope` with `call_scope_for` in a DB thread."""
    return await gateway().chat(scope, request, clock=clock)


async def llm_stream(
    *, scope: CallScope, request: ChatRequest, clock: ProviderClock | None = None
) -> AsyncIterator[StreamEvent]:
    """Typed stream events ending with `done`; closing the iterator stops the provider and
    settles exactly the tokens produced."""
    events = gateway().stream(scope, request, clock=clock)
    try:
        async for event in events:
            yield event
    finally:
        await events.aclose()  # type: ignore[attr-defined]


def llm_embed(
    *,
    workspace: Workspace,
    actor: Actor,
    feature: str,
    inputs: tuple[str, ...],
    alias: str = "embed",
    user: User | None = None,
    request_id: str | None = None,
) -> EmbedResponse:
    """Vectors for `inputs` through an embedding alias; the response names the model, which
    every index must record (never mix models)."""
    scope = call_scope_for(
        workspace=workspace, actor=actor, feature=feature, user=user, request_id=request_id
    )
    return run_sync(allm_embed(scope=scope, request=EmbedRequest(alias=alias, inputs=inputs)))


async def allm_embed(*, scope: CallScope, request: EmbedRequest) -> EmbedResponse:
    return await gateway().embed(scope, request)


async def allm_count(scope: Scope) -> None:
    """Count one use against `scope` with no model call (e.g. an API key's per-minute limit on
    endpoints that call no model; a call counts it in its own reservation). Atomic like a
    call's reservation; raises BudgetExceededError when the limit is reached."""
    store = gateway().budget
    async with _redis_answers():
        reservation = await store.reserve([scope], ttl=max(scope.ttl, 60))
        await store.settle(reservation, {scope.name: scope.amount})


async def allm_scope_usage(scopes: list[Scope]) -> list[ScopeUsage]:
    """Used / reserved / limit of `scopes` now, in one Redis round trip (rate-limit headers)."""
    async with _redis_answers():
        return await gateway().budget.usage(scopes)


def embedding_model_for(scope: CallScope, alias: str) -> str:
    """The model that answers embedding `alias` for this caller (the gateway resolves it the
    same way: configured providers first, else the offline model). Raises GatewayError for an
    unknown alias or a chat alias."""
    routes = scope.routing.resolve(alias, configured=frozenset(scope.providers), kind="embed")
    return routes.primary.model


async def _usage(scope: CallScope) -> list[ScopeUsage]:
    return await gateway().budget.usage(daily_scopes(scope, tokens=0))


def llm_budget_usage(*, workspace: Workspace, user: User | None = None) -> list[ScopeUsage]:
    """Today's used / reserved / limit per budget scope (banners at 80 % and 100 %, the CLI)."""
    scope = call_scope_for(
        workspace=workspace, actor=Actor("system", "budget"), feature="budget", user=user
    )
    return run_sync(_usage(scope))


@dataclass(frozen=True, slots=True)
class CreditUsage:
    """The credit balance scope now, and what the smallest call on an alias needs from it."""

    balance_micros: int
    pending_micros: int  # settled calls not debited yet
    reserved_micros: int  # calls running now
    needed_micros: int

    @property
    def available_micros(self) -> int:
        return self.balance_micros - self.pending_micros - self.reserved_micros

    @property
    def exhausted(self) -> bool:
        return self.available_micros < max(1, self.needed_micros)


async def _credit_usage(scope: CallScope, alias: str) -> CreditUsage:
    gw = gateway()
    needed = await gw.credit_needed(scope, alias)
    credit = credit_scope(scope, amount=needed)
    if credit is None:
        return CreditUsage(0, 0, 0, needed)
    (usage,) = await gw.budget.usage([credit])
    return CreditUsage(usage.limit, usage.used, usage.reserved, needed)


def llm_credit_usage(*, workspace: Workspace, alias: str) -> CreditUsage:
    """The workspace's credit as the gateway's reservation sees it (the chat paywall)."""
    scope = call_scope_for(workspace=workspace, actor=Actor("system", "budget"), feature="budget")
    return run_sync(_credit_usage(scope, alias))


async def _janitor() -> int:
    return await gateway().budget.janitor()


def llm_reservations_janitor() -> int:
    """Release reservations whose caller died (beat runs this every minute)."""
    return run_sync(_janitor())


def llm_after_call_replay() -> int:
    """Perform the after-call writes (settle, debit, record) Redis refused when their call
    ended and the database kept; beat runs this every 10 s. Returns how many were performed."""
    return after_call_writes_replay()
