"""Structured output: a reply asked for as JSON is validated here, server-side, and the call is
retried once with the validation error before the caller gets a StructuredOutputError."""

from __future__ import annotations

import json
from dataclasses import replace

from ..call import Call
from ..checks import json_error
from ..errors import StructuredOutputError
from ..types import Message
from .attempts import Attempts


async def structured_output(call: Call, attempts: Attempts) -> None:
    """Validate JSON replies server-side; retry once with the validation error."""
    fmt = call.request.response_format
    if fmt is None or fmt.type == "text" or call.response is None or call.response.tool_calls:
        return
    error = json_error(call.response.text, fmt.json_schema)
    if error is None:
        call.parsed = json.loads(call.response.text)
        return
    retry = replace(
        call.request,
        messages=(
            *call.request.messages,
            Message(role="assistant", content=call.response.text),
            Message(
                role="user",
                content=f"That reply is not valid: {error}. Reply again with only a JSON value that satisfies the schema.",
            ),
        ),
    )
    call.response = await attempts.complete(call, retry)
    call.usage = call.usage + call.response.usage
    error = json_error(call.response.text, fmt.json_schema)
    if error is not None:
        raise StructuredOutputError(
            f"The model's reply did not match the requested JSON Schema: {error}"
        )
    call.parsed = json.loads(call.response.text)
