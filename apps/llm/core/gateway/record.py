"""The one record every call leaves: what the ledger debit and the call log (traces) get."""

from __future__ import annotations

import time
from dataclasses import asdict, is_dataclass
from typing import Any

from ..call import Call
from ..checks import MAX_JSON_DEPTH, json_depth
from ..context import CallRecord
from ..pricing import PRICE_DATA_VERSION


def call_record(call: Call) -> CallRecord:
    """The call's record, built once: debit and record_call run together and share it."""
    if call.record is None:
        call.record = _build_record(call)
    return call.record


def _kept(value: Any, nested: Any = None) -> Any:
    """`value` as the trace stores it, or a note when it (its `nested` part) is too deep to
    copy: such a call was refused (checks.py), and its record must still be written."""
    if json_depth(value if nested is None else nested) > MAX_JSON_DEPTH:
        return {"omitted": f"nested more than {MAX_JSON_DEPTH} levels deep"}
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def _build_record(call: Call) -> CallRecord:
    route = call.route
    error = call.error
    request = call.request
    return CallRecord(
        call_id=call.call_id,
        request_id=call.request_id,
        trace_id=call.trace_id,
        schema=call.scope.schema,
        workspace_id=call.scope.workspace_id,
        actor_type=call.scope.actor.type,
        actor_id=call.scope.actor.id,
        feature=call.scope.feature,
        alias=request.alias,
        provider=route.provider if route else "",
        model=(
            call.response.model
            if call.response and call.response.model
            else route.model
            if route
            else ""
        ),
        status=call.status,
        input_tokens=call.usage.input_tokens,
        output_tokens=call.usage.output_tokens,
        cache_read_tokens=call.usage.cache_read_tokens,
        cache_write_tokens=call.usage.cache_write_tokens,
        cost_micros=call.cost,
        cached=call.cached,
        fallback_used=call.fallback_used,
        byok=bool(route and route.provider in call.scope.byok),
        offline=call.offline,
        duration_ms=(time.perf_counter() - call.started) * 1000,
        started_at=call.started_at,
        finish_reason=call.response.finish_reason if call.response else None,
        error_code=error.code if error else None,
        error_message=error.message if error else None,
        prompt_name=request.prompt_name,
        prompt_version=request.prompt_version,
        price_version=PRICE_DATA_VERSION,
        attempts=tuple(call.attempts),
        trace={
            "messages": [asdict(m) for m in request.messages],
            "tools": [_kept(t, t.parameters) for t in request.tools],
            "response_format": (
                _kept(request.response_format, request.response_format.json_schema)
                if request.response_format
                else None
            ),
            "params": {
                "max_tokens": call.max_tokens,
                "temperature": request.temperature,
                "stream": call.streaming,
            },
            "response": call.response.text if call.response else None,
            "tool_calls": [asdict(c) for c in call.response.tool_calls] if call.response else [],
            "thinking": call.response.thinking if call.response else "",
            "safety_signals": call.signals,
            "metadata": _kept(dict(request.metadata)),
        },
    )
