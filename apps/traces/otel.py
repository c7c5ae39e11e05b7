"""Stored traces as OpenTelemetry spans (OTLP over HTTP), for Langfuse or any OTel backend.

Off unless settings.OTEL_EXPORT_ENDPOINT is set. The flush calls `traces_export` after its
commit, with the rows it just stored: masked content only, never the raw table. Spans go to a
BatchSpanProcessor, whose bounded queue is drained by a background thread, so an exporter that
is slow, down or misconfigured drops spans (and logs why) but never blocks or loses call records.

Spans follow the GenAI semantic conventions (gen_ai.*), plus aisaas.* attributes. A span's trace
id is the call's trace id, so the span of a trace seen in admin is found by the same id.
"""

from __future__ import annotations

import atexit
import json
import threading
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.re import parse_env_headers

from apps.workspaces.models import Workspace

from .models import LlmCallLog, LlmTrace

log = structlog.get_logger(__name__)

SCOPE = InstrumentationScope("aisaas.traces")
OPERATION = "chat"
_ids = RandomIdGenerator()
_lock = threading.Lock()


class _Exporting:
    """The processor in use and what it was built for (settings may change in tests)."""

    def __init__(self) -> None:
        self.processor: BatchSpanProcessor | None = None
        self.built_for: tuple[str, str] | None = None
        self.exporter: SpanExporter | None = None  # set by `otel_exporter_use`


_state = _Exporting()


def otel_headers(value: str) -> dict[str, str]:
    """OTEL_EXPORT_HEADERS ("k=v,k2=v2", values URL-encoded as in OTEL_EXPORTER_OTLP_HEADERS)."""
    if not value.strip():
        return {}
    headers = dict(parse_env_headers(value, liberal=True))
    if not headers:
        raise ImproperlyConfigured(
            "OTEL_EXPORT_HEADERS must look like “Authorization=Basic%20<base64>,x-other=value”."
        )
    return headers


def otel_exporter_use(exporter: SpanExporter | None) -> None:
    """Export through `exporter` instead of OTLP/HTTP (an in-memory exporter in tests); None
    goes back to OTLP. Export still happens only while OTEL_EXPORT_ENDPOINT is set."""
    with _lock:
        _replace(None)
        _state.exporter = exporter


def otel_flush(timeout_millis: int = 30_000) -> bool:
    """Export every queued span now; whether it finished in time."""
    processor = _state.processor
    return processor.force_flush(timeout_millis) if processor is not None else True


def _replace(
    processor: BatchSpanProcessor | None, built_for: tuple[str, str] | None = None
) -> None:
    if _state.processor is not None:
        _state.processor.shutdown()  # exports what it holds first
    _state.processor, _state.built_for = processor, built_for


def _processor() -> BatchSpanProcessor | None:
    endpoint: str = settings.OTEL_EXPORT_ENDPOINT
    if not endpoint:
        return None
    wanted = (endpoint, settings.OTEL_EXPORT_HEADERS)
    with _lock:
        if _state.built_for != wanted or _state.processor is None:
            exporter = _state.exporter or OTLPSpanExporter(
                endpoint=endpoint, headers=otel_headers(settings.OTEL_EXPORT_HEADERS), timeout=10
            )
            _replace(BatchSpanProcessor(exporter), wanted)
        return _state.processor


def _shutdown() -> None:
    with _lock:
        _replace(None)


atexit.register(_shutdown)  # a CLI run exports its spans before the process ends


def traces_export(*, pairs: list[tuple[LlmCallLog, LlmTrace]]) -> int:
    """Queue one span per stored (call, masked trace) for export; return how many.

    Never raises: export is optional, and call records are already committed.
    """
    if not pairs:
        return 0
    try:
        processor = _processor()
        if processor is None:
            return 0
        slugs = dict(
            Workspace.objects.filter(pk__in={c.workspace_id for c, _ in pairs}).values_list(
                "pk", "slug"
            )
        )
        resource = Resource.create({"service.name": "aisaas"})
        for call, trace in pairs:
            processor.on_end(_span(call, trace, slugs.get(call.workspace_id, ""), resource))
    except Exception as exc:  # anything the exporter's setup throws
        log.error("otel.export_failed", error=str(exc), count=len(pairs))
        return 0
    return len(pairs)


def _span(call: LlmCallLog, trace: LlmTrace, slug: str, resource: Resource) -> ReadableSpan:
    start = int(call.created_at.timestamp() * 1e9)
    params = trace.params or {}
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.system": call.provider,
        "gen_ai.provider.name": call.provider,
        "gen_ai.request.model": call.model,
        "gen_ai.response.model": call.model,
        "gen_ai.usage.input_tokens": call.input_tokens,
        "gen_ai.usage.output_tokens": call.output_tokens,
        "gen_ai.response.finish_reasons": [call.finish_reason] if call.finish_reason else [],
        "gen_ai.input.messages": json.dumps(trace.messages, ensure_ascii=False),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "content": trace.response, "tool_calls": trace.tool_calls}],
            ensure_ascii=False,
        ),
        "aisaas.workspace": slug,
        "aisaas.workspace_id": call.workspace_id,
        "aisaas.feature": call.feature,
        "aisaas.alias": call.alias,
        "aisaas.status": call.status,
        "aisaas.cost_micros": call.cost_micros,
        "aisaas.cost_usd": call.cost_micros / 1_000_000,
        "aisaas.cache_hit": call.cached,
        "aisaas.fallback_used": call.fallback_used,
        "aisaas.offline": call.offline,
        "aisaas.trace_id": str(trace.trace_id),
        "aisaas.call_id": str(call.call_id),
        "aisaas.request_id": call.request_id,
        "aisaas.actor": f"{call.actor_type}:{call.actor_id}",
    }
    if params.get("max_tokens") is not None:
        attributes["gen_ai.request.max_tokens"] = params["max_tokens"]
    if params.get("temperature") is not None:
        attributes["gen_ai.request.temperature"] = params["temperature"]
    if call.prompt_name:
        attributes["aisaas.prompt"] = f"{call.prompt_name}@{call.prompt_version}"
    status = Status(StatusCode.UNSET)
    if call.status == "error":
        attributes["error.type"] = call.error_code or "error"
        status = Status(StatusCode.ERROR, call.error_message)  # masked at storage
    return ReadableSpan(
        name=f"{OPERATION} {call.model or call.alias}",
        context=SpanContext(
            trace_id=trace.trace_id.int,
            span_id=_ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        ),
        resource=resource,
        attributes=attributes,
        kind=SpanKind.CLIENT,
        status=status,
        start_time=start,
        end_time=start + int(call.duration_ms * 1e6),
        instrumentation_scope=SCOPE,
    )
