"""A pydantic model as the response format: schema in, validated instance out."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, Field

from apps.llm.core.context import Actor
from apps.llm.core.types import ChatRequest, Message
from apps.llm.services import llm_chat
from apps.llm.structured import parse_response, response_format_for

pytestmark = pytest.mark.django_db


class Ticket(BaseModel):
    title: str = Field(min_length=1)
    priority: Literal["low", "normal", "high"]
    estimate_hours: int = Field(ge=1, le=40)
    tags: list[str] = Field(min_length=1)


def test_a_pydantic_model_shapes_and_parses_the_reply(acme):
    request = ChatRequest(
        alias="extract",
        messages=(Message("user", "File a ticket: the invoice page is slow (structured test)"),),
        response_format=response_format_for(Ticket),
    )

    response = llm_chat(
        workspace=acme, actor=Actor("system", "test"), feature="extract.ticket", request=request
    )
    ticket = parse_response(Ticket, response)

    assert isinstance(ticket, Ticket)
    assert ticket.priority in ("low", "normal", "high")
    assert 1 <= ticket.estimate_hours <= 40
    assert response.parsed == ticket.model_dump()
