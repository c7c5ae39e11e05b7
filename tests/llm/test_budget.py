"""Budgets on real Redis: one Lua script reserves every scope or none, so concurrent calls can't
all pass on the same below-limit value; settling is idempotent; the janitor frees what dead
callers left, and a late settle still counts its usage exactly once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from apps.llm.core.budget import BudgetStore, Reservation, Scope
from apps.llm.core.context import Limits
from apps.llm.core.errors import BudgetExceededError
from apps.llm.core.providers.local import LocalProvider
from apps.llm.core.tokens import count_message_tokens
from apps.llm.core.types import ChatResponse

from .conftest import MakeRig, MakeScope, Names, Rig, ask


def _scope(names: Names, name: str, *, limit: int, amount: int) -> Scope:
    return Scope(name=name, key=f"{names.schema()}:budget:{name}", limit=limit, amount=amount)


async def _counters(store: BudgetStore, *scopes: Scope) -> list[tuple[int, int]]:
    """(used, reserved) per scope."""
    return [(u.used, u.reserved) for u in await store.usage(scopes)]


# --- BudgetStore -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_concurrent_reservations_across_two_scopes_are_all_or_nothing(
    redis_client: aioredis.Redis, names: Names
) -> None:
    # given a roomy scope and a tight one; every call asks for 10 of each
    store = BudgetStore(redis_client, prefix=names.prefix)
    roomy = _scope(names, "workspace_day_tokens", limit=10_000, amount=10)
    tight = _scope(names, "agent_day_tokens", limit=50, amount=10)
    # when 64 reserve at once
    results = await asyncio.gather(
        *(store.reserve([roomy, tight]) for _ in range(64)), return_exceptions=True
    )
    # then 5 hold both, and the 59 refused by the tight scope took nothing from the roomy one
    admitted = [r for r in results if isinstance(r, Reservation)]
    denied = [r for r in results if isinstance(r, BudgetExceededError)]
    assert (len(admitted), len(denied)) == (5, 59)
    assert {d.denial.scope for d in denied} == {"agent_day_tokens"}
    assert await _counters(store, roomy, tight) == [(0, 50), (0, 50)]
    assert await store.open_reservations() == 5


@pytest.mark.asyncio
async def test_a_refusal_names_the_scope_and_leaves_every_scope_untouched(
    redis_client: aioredis.Redis, names: Names
) -> None:
    # given the second scope already holds 45 of its 50
    store = BudgetStore(redis_client, prefix=names.prefix)
    first = _scope(names, "workspace_day_tokens", limit=1000, amount=10)
    second = _scope(names, "user_day_requests", limit=50, amount=45)
    await store.reserve([second])
    # when a call needs 10 of each
    with pytest.raises(BudgetExceededError) as refused:
        await store.reserve([first, replace(second, amount=10)])
    # then
    denial = refused.value.denial
    assert (denial.scope, denial.limit, denial.used, denial.reserved, denial.requested) == (
        "user_day_requests",
        50,
        0,
        45,
        10,
    )
    assert refused.value.status == 402
    assert "user_day_requests limit is reached: 45 of 50" in refused.value.message
    assert await _counters(store, first, second) == [(0, 0), (0, 45)]
    assert await store.open_reservations() == 1


@pytest.mark.asyncio
async def test_settle_counts_actual_usage_releases_the_rest_and_is_idempotent(
    redis_client: aioredis.Redis, names: Names
) -> None:
    # given a reservation of 100 tokens and 1 request
    store = BudgetStore(redis_client, prefix=names.prefix)
    tokens = _scope(names, "workspace_day_tokens", limit=1000, amount=100)
    requests = _scope(names, "user_day_requests", limit=10, amount=1)
    reservation = await store.reserve([tokens, requests])
    # when it settles twice (a retried after-call stage)
    first = await store.settle(reservation, {"workspace_day_tokens": 37, "user_day_requests": 1})
    second = await store.settle(reservation, {"workspace_day_tokens": 37, "user_day_requests": 1})
    # then the usage counts once
    assert (first, second) == (True, False)
    assert await _counters(store, tokens, requests) == [(37, 0), (1, 0)]
    assert await store.open_reservations() == 0


@pytest.mark.asyncio
async def test_release_gives_the_whole_reservation_back(
    redis_client: aioredis.Redis, names: Names
) -> None:
    # given
    store = BudgetStore(redis_client, prefix=names.prefix)
    tokens = _scope(names, "workspace_day_tokens", limit=1000, amount=100)
    reservation = await store.reserve([tokens])
    # when
    released = await store.release(reservation)
    # then
    assert released is True
    assert await _counters(store, tokens) == [(0, 0)]
    assert await store.open_reservations() == 0


@pytest.mark.asyncio
async def test_janitor_releases_expired_reservations_and_a_late_settle_counts_once(
    redis_client: aioredis.Redis, names: Names
) -> None:
    # given a 60 s reservation whose caller went quiet
    store = BudgetStore(redis_client, prefix=names.prefix)
    tokens = _scope(names, "workspace_day_tokens", limit=1000, amount=100)
    reservation = await store.reserve([tokens], ttl=60)
    # when the janitor runs before and after its expiry
    early = await store.janitor(now=time.time())
    late = await store.janitor(now=time.time() + 61)
    # then only the late run frees it
    assert (early, late) == (0, 1)
    assert await _counters(store, tokens) == [(0, 0)]
    assert await store.open_reservations() == 0
    # when the caller was only slow, and settles after the janitor (twice)
    settled = [
        await store.settle(reservation, {"workspace_day_tokens": 40}),
        await store.settle(reservation, {"workspace_day_tokens": 40}),
    ]
    # then its usage counts exactly once and nothing is released twice
    assert settled == [True, False]
    assert await store.janitor(now=time.time() + 3600) == 0
    assert await _counters(store, tokens) == [(40, 0)]


@pytest.mark.asyncio
async def test_janitor_works_through_more_than_one_batch(
    redis_client: aioredis.Redis, names: Names
) -> None:
    # given 7 abandoned reservations
    store = BudgetStore(redis_client, prefix=names.prefix)
    tokens = _scope(names, "workspace_day_tokens", limit=1000, amount=10)
    for _ in range(7):
        await store.reserve([tokens], ttl=5)
    # when the janitor frees them 3 at a time
    released = await store.janitor(now=time.time() + 6, batch=3)
    # then
    assert released == 7
    assert await _counters(store, tokens) == [(0, 0)]
    assert await store.open_reservations() == 0


# --- through the gateway -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_64_concurrent_calls_each_a_tenth_of_the_budget_admit_at_most_10(
    make_rig: MakeRig, make_scope: MakeScope, names: Names, local: LocalProvider
) -> None:
    # given calls whose worst case (input estimate + max_tokens) is a tenth of the day's
    # tokens; the offline model always writes past 8 tokens, so each call really uses it all
    rig = make_rig()
    request = ask(
        "Summarise the quarterly report for the board, please.", max_tokens=8, cache=False
    )
    worst = count_message_tokens(request.messages) + 8
    for round_ in range(20):
        scope = make_scope(
            {"local": local},
            schema=names.schema(f"round{round_}"),
            limits=Limits(workspace_day_tokens=10 * worst),
        )
        rig.records.clear()
        # when 64 arrive at once
        results = await asyncio.gather(
            *(rig.gateway.chat(scope, request) for _ in range(64)), return_exceptions=True
        )
        # then at most 10 are admitted, the rest are refused by the workspace budget,
        # and the recorded spend never passes the limit
        answers = [r for r in results if isinstance(r, ChatResponse)]
        denied = [r for r in results if isinstance(r, BudgetExceededError)]
        assert len(answers) + len(denied) == 64, [r for r in results if r not in answers + denied]
        assert len(answers) <= 10
        assert all(a.usage.total_tokens == worst for a in answers)
        assert len(answers) == 10  # exact usage: a refusal means ten tenths are taken
        assert {d.denial.scope for d in denied} == {"workspace_day_tokens"}
        counter = (await rig.usage(scope))["workspace_day_tokens"]
        recorded = sum(r.input_tokens + r.output_tokens for r in rig.records)
        assert counter.used == recorded == sum(a.usage.total_tokens for a in answers)
        assert counter.used <= counter.limit
        assert sorted(r.status for r in rig.records) == ["error"] * 54 + ["ok"] * 10
        await rig.assert_nothing_reserved(scope)


@pytest.mark.asyncio
async def test_user_requests_per_day_are_a_rate_limit(
    rig: Rig, make_scope: MakeScope, local: LocalProvider
) -> None:
    # given a user allowed 3 requests a day
    scope = make_scope({"local": local}, user_id=7, limits=Limits(user_day_requests=3))
    # when they send 4
    for _ in range(3):
        await rig.gateway.chat(scope, ask(cache=False))
    with pytest.raises(BudgetExceededError) as refused:
        await rig.gateway.chat(scope, ask(cache=False))
    # then the 4th is a 429 naming the scope, and the counters show 3 requests
    assert refused.value.status == 429
    assert refused.value.denial.scope == "user_day_requests"
    usage = await rig.usage(scope)
    assert (usage["user_day_requests"].used, usage["user_day_requests"].limit) == (3, 3)
    await rig.assert_nothing_reserved(scope)
