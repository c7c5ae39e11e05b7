"""Embeddings through the gateway: the `embed` alias, budgets, metering and records like chat."""

from __future__ import annotations

import math

import pytest

from apps.llm.core.context import Actor
from apps.llm.core.errors import InvalidRequestError, UnknownAliasError
from apps.llm.services import llm_budget_usage, llm_embed
from apps.traces.models import LlmCallLog
from apps.traces.services import call_records_flush

pytestmark = pytest.mark.django_db

ACTOR = Actor("system", "test")


def test_embed_alias_returns_normalised_vectors_and_the_model_name(acme):
    before = {u.name: u.used for u in llm_budget_usage(workspace=acme)}["workspace_day_tokens"]

    result = llm_embed(
        workspace=acme,
        actor=ACTOR,
        feature="rag.index",
        inputs=("Tenant schemas isolate data.", "Budgets are reserved atomically."),
    )

    assert result.model == "all-MiniLM-L6-v2"
    assert result.provider == "local"
    assert len(result.vectors) == 2
    assert all(len(v) == 384 for v in result.vectors)
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-3) for v in result.vectors)
    assert result.usage.input_tokens > 0
    assert result.cost_micros > 0
    after = {u.name: u.used for u in llm_budget_usage(workspace=acme)}["workspace_day_tokens"]
    assert after - before == result.usage.input_tokens
    call_records_flush()
    row = LlmCallLog.objects.get(trace_id=result.trace_id)
    assert (row.workspace_id, row.alias, row.status, row.feature) == (
        acme.pk,
        "embed",
        "ok",
        "rag.index",
    )
    assert row.cost_micros == result.cost_micros


@pytest.mark.parametrize(
    ("inputs", "field"),
    [((), "input"), (("ok", "   "), "input[1]")],
)
def test_bad_embed_input_is_refused_and_recorded_as_an_error(acme, inputs, field):
    # other tests (the /v1 API's) leave committed embed rows for acme: count only this feature
    with pytest.raises(InvalidRequestError) as refused:
        llm_embed(workspace=acme, actor=ACTOR, feature="rag.refused", inputs=inputs)

    assert refused.value.field == field
    call_records_flush()
    calls = LlmCallLog.objects.filter(workspace=acme, feature="rag.refused")
    assert calls.filter(status="ok").count() == 0


def test_a_chat_alias_cannot_embed(acme):
    with pytest.raises(InvalidRequestError, match="is a chat alias"):
        llm_embed(workspace=acme, actor=ACTOR, feature="rag.index", inputs=("x",), alias="smart")


def test_an_unknown_embedding_alias_is_404(acme):
    with pytest.raises(UnknownAliasError) as refused:
        llm_embed(workspace=acme, actor=ACTOR, feature="rag.index", inputs=("x",), alias="vectors")

    assert refused.value.status == 404
