"""Before the call: bad input refused with typed errors before anything is reserved or sent, and
the per-workspace exact cache looked up (a hit served for nothing, never across workspaces)."""

from __future__ import annotations

from typing import Any

import pytest

from apps.llm.core.errors import (
    InvalidRequestError,
    UnknownAliasError,
)
from apps.llm.core.types import Usage
from tests.fakes import Fault

from .conftest import MODELS, MakeScope, Names, Rig, Vendor, ask, both
from .gateway_cases import BAD_INPUT, BAD_INPUT_LIMITS, answer, bad

# --- exact cache ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_identical_request_is_answered_from_the_workspace_cache(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor
) -> None:
    # given acme asked once
    acme = make_scope({"openai": openai_fake.provider})
    first = await rig.gateway.chat(acme, ask("What is our refund policy?"))
    # when it asks the very same again
    second = await rig.gateway.chat(acme, ask("What is our refund policy?"))
    # then the provider is not called again and the answer costs nothing
    assert openai_fake.calls == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.text == first.text
    assert first.cost_micros > 0
    assert (second.cost_micros, second.usage) == (0, Usage())
    assert [(r.cached, r.cost_micros == 0, r.status) for r in rig.records] == [
        (False, False, "ok"),
        (True, True, "ok"),
    ]
    assert await rig.tokens_used(acme) == first.usage.total_tokens
    await rig.assert_nothing_reserved(acme)


@pytest.mark.asyncio
async def test_another_workspace_is_never_served_from_acmes_cache(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor, names: Names
) -> None:
    # given acme's answer is cached
    providers = {"openai": openai_fake.provider}
    acme = make_scope(providers, schema=names.schema("acme"))
    globex = make_scope(providers, schema=names.schema("globex"))
    await rig.gateway.chat(acme, ask("What is our refund policy?"))
    # when globex sends the byte-identical request
    answer = await rig.gateway.chat(globex, ask("What is our refund policy?"))
    # then globex gets its own call, which its own cache then serves
    assert answer.cached is False
    assert openai_fake.calls == 2
    again = await rig.gateway.chat(globex, ask("What is our refund policy?"))
    assert again.cached is True
    assert openai_fake.calls == 2


@pytest.mark.asyncio
async def test_cache_false_neither_reads_nor_writes_the_cache(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor
) -> None:
    # given
    scope = make_scope({"openai": openai_fake.provider})
    # when the same request is sent twice with cache=False, then once with the cache
    answers = [
        await rig.gateway.chat(scope, ask("Regenerate this", cache=False)),
        await rig.gateway.chat(scope, ask("Regenerate this", cache=False)),
        await rig.gateway.chat(scope, ask("Regenerate this")),
    ]
    # then every one reached the provider
    assert [a.cached for a in answers] == [False, False, False]
    assert openai_fake.calls == 3


@pytest.mark.asyncio
async def test_a_fallback_answer_is_not_cached_as_the_primary_models(
    rig: Rig, make_scope: MakeScope, pair: tuple[Vendor, Vendor]
) -> None:
    # given the fallback answered while the primary was down
    primary, fallback = pair
    primary.server.fail_next(Fault.server_error(), times=2)
    scope = make_scope(**both(pair))
    first = await rig.gateway.chat(scope, ask("What is our refund policy?"))
    assert first.fallback_used is True
    # when the same request comes again, the primary healthy
    again = await rig.gateway.chat(scope, ask("What is our refund policy?"))
    # then the primary answers it (the cache key names the primary's model), and caches it
    assert (again.cached, again.provider, again.model) == (
        False,
        primary.name,
        MODELS[primary.name],
    )
    assert (primary.calls, fallback.calls) == (3, 1)
    assert (await rig.gateway.chat(scope, ask("What is our refund policy?"))).cached is True


@pytest.mark.asyncio
async def test_different_parameters_are_different_cache_entries(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor
) -> None:
    # given
    scope = make_scope({"openai": openai_fake.provider})
    # when the same text is asked with another temperature, then another max_tokens
    await rig.gateway.chat(scope, ask("Same words"))
    await rig.gateway.chat(scope, ask("Same words", temperature=0.9))
    await rig.gateway.chat(scope, ask("Same words", max_tokens=7))
    # then
    assert openai_fake.calls == 3


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize(("changes", "error", "field", "phrase"), BAD_INPUT)
async def test_bad_input_is_a_typed_error_with_no_reservation_and_no_success_logged(
    rig: Rig,
    make_scope: MakeScope,
    openai_fake: Vendor,
    streamed: bool,
    changes: dict[str, Any],
    error: type[InvalidRequestError],
    field: str | None,
    phrase: str,
) -> None:
    # given
    scope = make_scope({"openai": openai_fake.provider}, user_id=7, limits=BAD_INPUT_LIMITS)
    # when
    with pytest.raises(error) as refused:
        await answer(rig.gateway, scope, bad(changes), streamed=streamed)
    # then a clear, typed refusal before anything was reserved or sent
    assert type(refused.value) is error
    assert refused.value.field == field
    assert phrase in refused.value.message
    assert refused.value.status == (404 if error is UnknownAliasError else 400)
    assert openai_fake.calls == 0
    await rig.assert_nothing_reserved(scope)
    usage = await rig.usage(scope)
    assert (usage["workspace_day_tokens"].used, usage["user_day_requests"].used) == (0, 0)
    record = rig.record
    assert (record.status, record.error_code, record.cost_micros) == (
        "error",
        refused.value.code,
        0,
    )
    assert record.error_message == refused.value.message
