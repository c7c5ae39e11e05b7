"""Call records: queued by the gateway on its hot path, stored here off it.

The gateway pushes each finished call as JSON onto one Redis list (a platform-wide queue: it
crosses workspaces by design). `call_records_flush` drains it in batches, masks PII and secrets,
and writes llm_call_log + llm_trace rows, plus the unmasked content in llm_trace_raw: short-term
storage that retention deletes after the plan's raw days. Everything long-term is masked: the
trace, the call log's error message, eval candidates, log lines and the dead-letter list.
Beat runs it every few seconds; the CLI and tests call it directly.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio as aioredis
import structlog
from django.db import DataError, IntegrityError, transaction

from apps.common.outbox import LeasedOutbox
from apps.common.redis_clients import redis_sync_client
from apps.llm.services import CallRecord
from apps.workspaces.models import Workspace

from .masking import mask, mask_value
from .models import LlmCallLog, LlmTrace, LlmTraceRaw
from .otel import traces_export
from .ports import stored_calls_listeners
from .rollups import rollups_add

log = structlog.get_logger(__name__)

QUEUE_KEY = "all_workspaces:llm:call_records"
# Records that could not be read (a bug or a version mismatch): kept for a person to look at.
DEAD_LETTER_KEY = "all_workspaces:llm:call_records:unreadable"
PROCESSING_KEY = LeasedOutbox.processing_key_for(QUEUE_KEY)  # claimed records, by lease deadline
LEASE_SECONDS = 60  # a batch claimed by a worker that died is claimed again after this


class RedisCallSink:
    """The gateway's CallSink: one RPUSH per call (tens of microseconds)."""

    def __init__(self, client: aioredis.Redis):
        self.client = client

    async def record(self, record: CallRecord) -> None:
        await self.client.rpush(QUEUE_KEY, _encode(record))


def _encode(record: CallRecord) -> str:
    # The fields are JSON-ready already (the trace holds plain dicts and lists), so a shallow
    # map gives asdict's JSON without its deep copy of the trace, which cost more than the RPUSH.
    return json.dumps({f.name: getattr(record, f.name) for f in fields(record)}, default=str)


def _sync_client() -> redis.Redis:
    return redis_sync_client()


def _rows(data: dict[str, Any]) -> tuple[LlmCallLog, LlmTrace]:
    created = datetime.fromtimestamp(data["started_at"], tz=UTC)
    trace = data.get("trace") or {}
    # Parsed here, so a malformed id makes the record unreadable instead of failing its batch.
    call_id, trace_id = uuid.UUID(data["call_id"]), uuid.UUID(data["trace_id"])
    call = LlmCallLog(
        call_id=call_id,
        request_id=data["request_id"],
        trace_id=trace_id,
        workspace_id=data["workspace_id"],
        actor_type=data["actor_type"],
        actor_id=data["actor_id"],
        feature=data["feature"],
        alias=data["alias"],
        provider=data["provider"],
        model=data["model"],
        status=data["status"],
        finish_reason=data["finish_reason"] or "",
        input_tokens=data["input_tokens"],
        output_tokens=data["output_tokens"],
        cache_read_tokens=data["cache_read_tokens"],
        cache_write_tokens=data["cache_write_tokens"],
        cost_micros=data["cost_micros"],
        cached=data["cached"],
        fallback_used=data["fallback_used"],
        byok=data["byok"],
        offline=data["offline"],
        duration_ms=data["duration_ms"],
        error_code=data["error_code"] or "",
        error_message=mask(data["error_message"] or ""),
        prompt_name=data["prompt_name"] or "",
        prompt_version=data["prompt_version"] or "",
        price_version=data["price_version"],
        attempts=data["attempts"],
        created_at=created,
    )
    masked = LlmTrace(
        trace_id=trace_id,
        call=call,
        workspace_id=data["workspace_id"],
        messages=mask_value(trace.get("messages", [])),
        tools=mask_value(trace.get("tools", [])),
        response_format=mask_value(trace.get("response_format")),
        params=trace.get("params", {}),
        response=mask(trace.get("response") or ""),
        tool_calls=mask_value(trace.get("tool_calls", [])),
        thinking=mask(trace.get("thinking") or ""),
        safety_signals=mask_value(trace.get("safety_signals", [])),
        metadata=mask_value(trace.get("metadata", {})),
        created_at=created,
    )
    # Travels in the trace's relation cache, so the (call, trace) pairs every consumer of a
    # batch reads stay as they are; `_store` writes it once the trace has its key.
    masked.raw = LlmTraceRaw(
        workspace_id=data["workspace_id"],
        messages=trace.get("messages", []),
        response=trace.get("response") or "",
        tool_calls=trace.get("tool_calls", []),
        thinking=trace.get("thinking") or "",
        created_at=created,
    )
    return call, masked


def _outbox(client: redis.Redis) -> LeasedOutbox:
    return LeasedOutbox(
        client, QUEUE_KEY, dead_letter_key=DEAD_LETTER_KEY, lease_seconds=LEASE_SECONDS
    )


def call_records_flush(*, batch: int = 500, client: redis.Redis | None = None) -> int:
    """Move queued call records into llm_call_log / llm_trace; return how many were stored.

    The queue is a leased outbox (apps/common/outbox.py): a batch is claimed, stored in one
    transaction and acknowledged after the commit, so a worker killed mid-batch loses nothing
    (the batch is claimed again when its lease ends). A record already stored (same call_id,
    in the table or twice in the batch) is skipped, so a batch stored twice stores nothing
    twice. A record that cannot be read goes to a dead-letter list instead of blocking the
    queue forever; one whose workspace was deleted meanwhile is dropped.
    """
    outbox = _outbox(client or _sync_client())
    stored = 0
    while True:
        raw = outbox.claim(batch)
        if not raw:
            return stored
        readable: list[bytes] = []
        pairs: list[tuple[LlmCallLog, LlmTrace]] = []
        unreadable: list[bytes] = []
        for item in raw:
            try:
                pairs.append(_rows(_storable(json.loads(item))))
            except (ValueError, KeyError, TypeError):
                unreadable.append(item)
            else:
                readable.append(item)
        if unreadable:
            _dead_letter(outbox, unreadable)
            log.error("call_records.unreadable", count=len(unreadable), key=DEAD_LETTER_KEY)
        try:
            stored += _store(pairs)
        except (DataError, IntegrityError):
            # A record the database refuses must not block the queue: store the batch one
            # record at a time and dead-letter those refused.
            stored += _store_each(outbox, readable, pairs)
        except Exception:
            outbox.release(readable)  # the next run retries them first
            raise
        outbox.ack(readable)
        if len(raw) < batch:
            return stored


def _storable(value: Any) -> Any:
    """`value` without NUL characters, which PostgreSQL text and jsonb cannot hold (a prompt
    may carry them). Each becomes U+FFFD, so the trace still shows where one was."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


def _dead_letter(outbox: LeasedOutbox, items: list[bytes]) -> None:
    """Keep records for a person to look at, masked: the list has no expiry, so it is long-term
    storage. A JSON record keeps its shape (only its strings are masked); anything else is
    masked as text."""
    kept: list[str] = []
    for item in items:
        text = item.decode("utf-8", errors="replace")
        try:
            kept.append(json.dumps(mask_value(json.loads(text))))
        except ValueError:
            kept.append(mask(text))
    outbox.dead_letter(items, kept=kept)


def _store_each(
    outbox: LeasedOutbox, items: list[bytes], pairs: list[tuple[LlmCallLog, LlmTrace]]
) -> int:
    stored = 0
    for item, pair in zip(items, pairs, strict=True):
        try:
            stored += _store([pair])
        except (DataError, IntegrityError) as exc:
            _dead_letter(outbox, [item])
            log.error("call_records.refused", error=str(exc), key=DEAD_LETTER_KEY)
    return stored


def _store(pairs: list[tuple[LlmCallLog, LlmTrace]]) -> int:
    # UUIDs on both sides: records carry hex strings, the database returns UUIDs.
    unique: dict[uuid.UUID, tuple[LlmCallLog, LlmTrace]] = {}
    for call, trace in pairs:
        unique.setdefault(call.call_id, (call, trace))
    with transaction.atomic():
        known = set(
            LlmCallLog.objects.filter(call_id__in=list(unique)).values_list("call_id", flat=True)
        )
        workspace_ids = {call.workspace_id for call, _ in unique.values()}
        live = set(Workspace.objects.filter(pk__in=workspace_ids).values_list("pk", flat=True))
        if gone := workspace_ids - live:
            log.warning("call_records.workspace_gone", workspace_ids=sorted(gone))
        fresh = [
            (call, trace)
            for call_id, (call, trace) in unique.items()
            if call_id not in known and call.workspace_id in live
        ]
        LlmCallLog.objects.bulk_create([c for c, _ in fresh])
        LlmTrace.objects.bulk_create([t for _, t in fresh])
        LlmTraceRaw.objects.bulk_create([_raw_of(t) for _, t in fresh])
        rollups_add(pairs=fresh)  # only fresh calls: a replayed batch adds nothing
    # After the commit, so a listener (evals: a share becomes eval candidates) can never hold
    # up call records.
    for listener in stored_calls_listeners():
        listener(fresh)
    traces_export(pairs=fresh)  # OpenTelemetry, when configured; never raises or blocks
    return len(fresh)


def _raw_of(trace: LlmTrace) -> LlmTraceRaw:
    raw: LlmTraceRaw = trace.raw
    raw.trace = trace  # the trace's key exists now
    return raw
