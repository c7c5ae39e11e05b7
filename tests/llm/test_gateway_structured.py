"""Structured outputs through the gateway: an invalid reply retried once with the error, a typed
error after the second, and the parsed value kept by the exact cache."""

from __future__ import annotations

import pytest

from apps.llm.core.errors import StructuredOutputError
from apps.llm.core.types import ResponseFormat
from tests.fakes import Reply

from .conftest import MakeScope, Rig, Vendor, ask

# --- structured output ---------------------------------------------------------------------

CARD = {
    "type": "object",
    "properties": {"title": {"type": "string"}},
    "required": ["title"],
    "additionalProperties": False,
}
CARD_FORMAT = ResponseFormat(type="json_schema", json_schema=CARD, name="card")


@pytest.mark.asyncio
async def test_an_invalid_structured_reply_is_retried_once_with_the_error(
    rig: Rig, make_scope: MakeScope, vendor: Vendor
) -> None:
    # given a model that first answers in prose, then in valid JSON
    vendor.server.reply_next(Reply(text="Sure! The title is Quarterly report."))
    vendor.server.reply_next(Reply(text='{"title": "Quarterly report"}'))
    scope = make_scope({vendor.name: vendor.provider})
    # when
    response = await rig.gateway.chat(scope, ask("Title this", response_format=CARD_FORMAT))
    # then the retry told the model what was wrong, and the parsed value is returned
    assert response.parsed == {"title": "Quarterly report"}
    assert vendor.calls == 2
    retry = vendor.server.last_request.body["messages"]
    assert retry[-2]["content"] == "Sure! The title is Quarterly report."
    assert retry[-1]["role"] == "user"
    assert "That reply is not valid: not JSON" in retry[-1]["content"]
    # and both attempts are paid for (the fake counts a word as a token: 6, then 3)
    assert response.usage.output_tokens == 6 + 3
    assert await rig.tokens_used(scope) == response.usage.total_tokens
    assert rig.record.status == "ok"
    await rig.assert_nothing_reserved(scope)


@pytest.mark.asyncio
async def test_twice_invalid_structured_replies_are_a_typed_error(
    rig: Rig, make_scope: MakeScope, vendor: Vendor
) -> None:
    # given a model that never matches the schema
    vendor.server.reply_next(Reply(text="not json"))
    vendor.server.reply_next(Reply(text='{"title": 5}'))
    scope = make_scope({vendor.name: vendor.provider})
    # when
    with pytest.raises(StructuredOutputError) as failed:
        await rig.gateway.chat(scope, ask("Title this", response_format=CARD_FORMAT))
    # then it names the mismatch; the tokens spent still count, and nothing stays reserved
    assert "5 is not of type 'string' at title" in failed.value.message
    assert vendor.calls == 2
    record = rig.record
    assert (record.status, record.error_code) == ("error", "structured_output_invalid")
    assert record.output_tokens == 2 + 2  # "not json", then '{"title": 5}': two words each
    assert await rig.tokens_used(scope) == record.input_tokens + record.output_tokens
    await rig.assert_nothing_reserved(scope)


@pytest.mark.asyncio
async def test_a_cached_structured_answer_still_carries_the_parsed_value(
    rig: Rig, make_scope: MakeScope, openai_fake: Vendor
) -> None:
    # given a structured answer in the cache
    openai_fake.server.reply_next(Reply(text='{"title": "Quarterly report"}'))
    scope = make_scope({"openai": openai_fake.provider})
    request = ask("Title this", response_format=CARD_FORMAT)
    first = await rig.gateway.chat(scope, request)
    # when
    again = await rig.gateway.chat(scope, request)
    # then
    assert (again.cached, openai_fake.calls) == (True, 1)
    assert again.parsed == first.parsed == {"title": "Quarterly report"}
