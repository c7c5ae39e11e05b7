"""The one entry for Django code that calls a model (DESIGN §4). Business code names an alias
and a feature; everything else — routing, budgets, cache, fallback, metering, traces — happens
in the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from apps.workspaces.models import User, Workspace

from .adapters import gateway, run_sync
from .config import call_scope_for
from .core.budget import Scope, ScopeUsage
from .core.call import ProviderClock
from .core.context import Actor, CallScope, credit_scope, daily_scopes
from .core.types import ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, StreamEvent


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
    reservation = await store.reserve([scope], ttl=max(scope.ttl, 60))
    await store.settle(reservation, {scope.name: scope.amount})


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
