"""`/v1/outcomes`: an API client reports a billable result ("ticket resolved") and reads its
workspace's outcomes back.

The price is `price_usd`, US dollars as a decimal string ("0.25") or a JSON number, converted
exactly (never through a float) to integer micro-dollars: at most six decimal places. Strings
are plain digits with an optional fraction: no sign, exponent or spaces. What the JSON Schemas
below allow is a superset of what is accepted: never the other way round.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from apps.billing.ledger import MAX_USD
from apps.billing.models import OutcomeStatus

from .openai import Strict

USD_TEXT = r"^[0-9]+(\.[0-9]+)?$"
UUID_TEXT = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
MAX_ID = 2**63 - 1  # outcome ids are bigints
KIND_MAX_CHARS = 100
EXTERNAL_ID_MAX_CHARS = 200
RUN_ID_MAX_CHARS = 64


def _usd(value: Any) -> Decimal:
    """A decimal string or a JSON number (already a Decimal when the body was parsed exactly)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise PydanticCustomError(
            "usd_type",
            'Input should be an amount in US dollars: a string such as "0.25" or a number',
        )
    if isinstance(value, str):
        if not re.fullmatch(USD_TEXT, value):
            raise PydanticCustomError(
                "usd_parsing",
                'Input should be digits with an optional decimal fraction, such as "0.25" '
                "(no sign, exponent or spaces)",
            )
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def _uuid(value: Any) -> Any:
    """Only the canonical 8-4-4-4-12 form (what `format: uuid` means), not the braced, URN or
    hyphen-less forms Python would also read."""
    if isinstance(value, str) and not re.fullmatch(UUID_TEXT, value):
        raise PydanticCustomError(
            "uuid_parsing", "Input should be a UUID such as 123e4567-e89b-12d3-a456-426614174000"
        )
    return value


def whole_number(value: Any) -> Any:
    """A query-string number: plain digits (pydantic would also read "+5", " 5", "1_0", "5.0")."""
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,19}", value):
        raise PydanticCustomError("int_parsing", "Input should be a whole number")
    return value


def storable(value: Any) -> Any:
    """Text PostgreSQL can keep: no NUL character, no unpaired surrogate (JSON allows both)."""
    if not isinstance(value, str):
        return value
    if "\x00" in value:
        raise PydanticCustomError("string_unstorable", "Input should not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "string_unstorable", "Input should be valid Unicode (no unpaired surrogates)"
        ) from None
    return value


# Bounds sit on the plain str or int, ahead of the validator: only there do they reach the JSON
# Schema and pydantic's own wording ("String should have at most 100 characters").
NO_NUL = {"pattern": "^[^\\x00]*$"}
Kind = Annotated[
    str,
    Field(min_length=1, max_length=KIND_MAX_CHARS, json_schema_extra=NO_NUL),
    BeforeValidator(storable),
]
ExternalId = Annotated[
    str,
    Field(min_length=1, max_length=EXTERNAL_ID_MAX_CHARS, json_schema_extra=NO_NUL),
    BeforeValidator(storable),
]
RunId = Annotated[
    str, Field(max_length=RUN_ID_MAX_CHARS, json_schema_extra=NO_NUL), BeforeValidator(storable)
]
PriceUsd = Annotated[
    Decimal,
    BeforeValidator(_usd),
    Field(gt=0),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": USD_TEXT},
                {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_USD},
            ],
            "description": (
                'The price in US dollars: a decimal string ("0.25") or a number, more than '
                "zero, at most six decimal places (one micro-dollar) and at most "
                f"{MAX_USD:,}. Converted exactly to integer micro-dollars (`price_micros`)."
            ),
            "examples": ["0.25"],
        },
        mode="validation",
    ),
]
TraceId = Annotated[uuid.UUID, BeforeValidator(_uuid)]
PageSize = Annotated[int, Field(ge=1, le=100), BeforeValidator(whole_number)]
OutcomeId = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(whole_number)]


class OutcomeCreate(BaseModel):
    """POST /v1/outcomes. Idempotent per workspace and `external_id`."""

    model_config = Strict
    kind: Annotated[
        Kind,
        Field(
            description="What was achieved, e.g. `ticket_resolved` (surrounding spaces are trimmed).",
            examples=["ticket_resolved"],
        ),
    ]
    price_usd: PriceUsd
    external_id: Annotated[
        ExternalId,
        Field(
            description=(
                "Your id for this result (a ticket number): one outcome per id and workspace. "
                "Sending it again with the same kind and price returns the first outcome."
            ),
            examples=["ticket-4711"],
        ),
    ]
    trace_id: Annotated[
        TraceId | None,
        Field(description="The `aisaas.trace_id` of the call that produced the result."),
    ] = None
    run_id: Annotated[
        RunId | None,
        Field(description="Your run or job id, for reference."),
    ] = None


class OutcomeListQuery(BaseModel):
    """GET /v1/outcomes: the query string."""

    model_config = Strict
    limit: Annotated[PageSize, Field(description="Outcomes per page.")] = 20
    status: Annotated[OutcomeStatus | None, Field(description="Only outcomes in this state.")] = (
        None
    )
    after: Annotated[
        OutcomeId | None,
        Field(
            description=(
                "An outcome id of this workspace (the last `id` of the previous page): the page "
                "starts with the next older outcome."
            ),
        ),
    ] = None
    external_id: Annotated[
        ExternalId | None,
        Field(
            description="Only the outcome with this `external_id` (a list of one, or empty).",
        ),
    ] = None


# --- responses ------------------------------------------------------------------------------


class Outcome(BaseModel):
    """A billable outcome. `pending` until `dispute_window_ends_at`, then `final` (billed);
    the workspace's owners and admins may dispute it before then (`disputed`), and a dispute
    staff uphold makes it `credited` (never billed)."""

    id: int
    object: Literal["outcome"]
    kind: str
    price_micros: int = Field(description="The price in integer micro-dollars ($1 = 1,000,000).")
    price_usd: str = Field(
        description="The same price in US dollars, with six decimals.", examples=["0.250000"]
    )
    status: OutcomeStatus
    external_id: str
    trace_id: uuid.UUID | None
    run_id: str | None
    created_at: datetime
    dispute_window_ends_at: datetime = Field(
        description="Until then it may be disputed; after it, it is billed."
    )


class OutcomeList(BaseModel):
    """Outcomes, newest first."""

    object: Literal["list"]
    data: list[Outcome]
    has_more: bool = Field(description="More outcomes follow: ask again with `after`.")
