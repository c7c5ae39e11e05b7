"""Before the call: check the request, resolve its alias, look for injection attempts,
reserve the worst case in every budget scope while looking up the exact cache, and use a hit
only once the reservation is granted."""

from __future__ import annotations

from dataclasses import replace

from ..budget import BudgetStore, Scope
from ..cache import ExactCache, cache_key
from ..call import Call
from ..checks import check_chat_request, check_embed_request
from ..context import credit_scope, daily_scopes
from ..pricing import NominalRate, cost_micros
from ..safety import injection_signals
from ..types import Usage


async def validate(call: Call) -> None:
    call.input_estimate = check_chat_request(call.request, call.scope.limits)


async def resolve_alias(call: Call) -> None:
    scope = call.scope
    call.routes = scope.routing.resolve(call.request.alias, configured=frozenset(scope.providers))
    call.max_tokens = call.request.max_tokens or min(
        scope.limits.max_tokens, call.routes.max_tokens
    )
    call.route = call.routes.primary


async def validate_embed(call: Call) -> None:
    assert call.embed is not None
    call.input_estimate = check_embed_request(call.embed, call.scope.limits)


async def resolve_embed_alias(call: Call) -> None:
    """An embedding alias has one route and no fallback: vectors of two models must never
    share an index."""
    scope = call.scope
    call.routes = scope.routing.resolve(
        call.request.alias, configured=frozenset(scope.providers), kind="embed"
    )
    call.route = call.routes.primary


async def safety_precheck(call: Call) -> None:
    call.signals = injection_signals(call.request.messages)


class Admission:
    """The before-call stages that use a port: the budget reservation and the cache lookup."""

    def __init__(
        self, *, budget: BudgetStore, cache: ExactCache, reservation_ttl: int, nominal: NominalRate
    ):
        self.budget = budget
        self.cache = cache
        self.reservation_ttl = reservation_ttl
        self.nominal = nominal

    async def reserve_budget(self, call: Call) -> None:
        # Named by the call id: the credit scope's pending charge is kept under it until the
        # ledger debit of this call (idempotency key `call:<call id>`) acknowledges it.
        call.reservation = await self.budget.reserve(
            reservation_scopes(call, nominal=self.nominal),
            ttl=self.reservation_ttl,
            reservation_id=call.call_id,
        )

    async def lookup_exact_cache(self, call: Call) -> None:
        if not call.request.cache:
            return
        assert call.route is not None
        call.key = cache_key(
            schema=call.scope.schema,
            provider=call.route.provider,
            model=call.route.model,
            request=call.request,
            max_tokens=call.max_tokens,
        )
        call.hit = await self.cache.get(call.key)


async def use_cache_hit(call: Call) -> None:
    # Its own stage, after the reservation was granted: a denied call is not a cache hit.
    if call.hit is not None:
        call.response, call.cached, call.usage = call.hit, True, Usage()


# --- the worst case a reservation holds ---------------------------------------------------


def reservation_scopes(call: Call, *, nominal: NominalRate) -> list[Scope]:
    extra = list(call.scope.extra_scopes)
    if any(s.unit == "micro-dollars" for s in extra):  # price the worst case only if it counts
        worst = worst_cost(call, nominal=nominal)
        extra = [replace(s, amount=worst) if s.unit == "micro-dollars" else s for s in extra]
    scopes = [*daily_scopes(call.scope, tokens=call.input_estimate + call.max_tokens), *extra]
    credit = credit_scope(call.scope, amount=worst_charge(call, nominal=nominal))
    return scopes if credit is None else [*scopes, credit]


def worst_cost(call: Call, *, nominal: NominalRate) -> int:
    assert call.routes is not None
    worst = Usage(input_tokens=call.input_estimate, output_tokens=call.max_tokens)
    return max(cost_micros(r.provider, r.model, worst, nominal=nominal) for r in call.routes.routes)


def worst_charge(call: Call, *, nominal: NominalRate) -> int:
    """The most this call can take from the credit balance, over primary and fallback: a
    route on the workspace's own key is charged the BYOK fee instead of its cost."""
    credit = call.scope.credit
    if credit is None:
        return 0
    assert call.routes is not None
    worst = Usage(input_tokens=call.input_estimate, output_tokens=call.max_tokens)
    return max(
        credit.byok_fee_micros
        if r.provider in call.scope.byok
        else cost_micros(r.provider, r.model, worst, nominal=nominal)
        for r in call.routes.routes
    )
