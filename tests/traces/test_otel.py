"""OpenTelemetry export: one span per stored trace, GenAI attributes, masked content only; off by
default; a failing exporter never costs a call record; the real OTLP/HTTP exporter delivers."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.test import override_settings
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from apps.llm.core.types import ChatRequest, ChatResponse, Message
from apps.llm.services import llm_chat
from apps.traces.models import LlmCallLog, LlmTrace
from apps.traces.otel import otel_exporter_use, otel_flush
from apps.traces.services import call_records_flush
from apps.workspaces.models import User, Workspace
from tests.gateway_support import gateway_settings, unique, user_actor

pytestmark = pytest.mark.django_db

EMAIL = "jane.doe@example.com"
CARD = "4242 4242 4242 4242"
ENDPOINT = "http://127.0.0.1:9/v1/traces"  # never dialled: an exporter is injected


@pytest.fixture(autouse=True)
def _offline_glue() -> Iterator[None]:
    with gateway_settings():
        yield
    otel_exporter_use(None)


def _call(workspace: Workspace, user: User, text: str) -> ChatResponse:
    request = ChatRequest(
        alias="smart",
        messages=(Message("system", "You are a helpful assistant."), Message("user", text)),
        metadata={"customer": EMAIL},
    )
    return llm_chat(workspace=workspace, actor=user_actor(user), feature="chat", request=request)


def _ours(spans: Sequence[ReadableSpan], *responses: ChatResponse) -> list[ReadableSpan]:
    wanted = {uuid.UUID(r.trace_id).int for r in responses}
    return [s for s in spans if s.context is not None and s.context.trace_id in wanted]


def test_each_stored_trace_becomes_one_span_with_genai_attributes_and_masked_content(
    acme: Workspace, owner: User
) -> None:
    exporter = InMemorySpanExporter()
    with override_settings(OTEL_EXPORT_ENDPOINT=ENDPOINT):
        otel_exporter_use(exporter)
        # given two calls whose prompts carry PII (the local model quotes them back)
        first = _call(acme, owner, unique(f"Is {EMAIL} on file with card {CARD}?"))
        second = _call(acme, owner, unique("What is our refund policy?"))

        # when the flush stores them and the batch is exported
        call_records_flush()
        assert otel_flush()

    # then one span per stored record
    spans = _ours(exporter.get_finished_spans(), first, second)
    assert len(spans) == 2
    span = next(
        s for s in spans if s.context and s.context.trace_id == uuid.UUID(first.trace_id).int
    )
    call = LlmCallLog.objects.get(trace_id=first.trace_id)
    attributes = dict(span.attributes or {})
    assert span.name == f"chat {call.model}"
    assert {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": call.provider,
        "gen_ai.request.model": call.model,
        "gen_ai.usage.input_tokens": call.input_tokens,
        "gen_ai.usage.output_tokens": call.output_tokens,
        "aisaas.workspace": "acme",
        "aisaas.feature": "chat",
        "aisaas.cost_micros": call.cost_micros,
        "aisaas.cache_hit": False,
        "aisaas.trace_id": str(call.trace_id),
        "aisaas.call_id": str(call.call_id),
    }.items() <= attributes.items()
    assert span.end_time is not None
    assert span.start_time is not None
    assert span.end_time - span.start_time == int(call.duration_ms * 1e6)
    # and its content is the masked trace's, never the raw one
    content = str(attributes["gen_ai.input.messages"]) + str(attributes["gen_ai.output.messages"])
    assert EMAIL not in content
    assert CARD not in content
    assert "[EMAIL]" in content
    assert "[CARD]" in content
    output = json.loads(str(attributes["gen_ai.output.messages"]))
    assert output[0]["content"] == LlmTrace.objects.get(trace_id=first.trace_id).response


def test_nothing_is_exported_when_no_endpoint_is_set(acme: Workspace, owner: User) -> None:
    exporter = InMemorySpanExporter()
    otel_exporter_use(exporter)  # injected, but the endpoint setting is empty (the default)

    response = _call(acme, owner, unique("hello"))
    call_records_flush()
    otel_flush()

    assert LlmCallLog.objects.filter(trace_id=response.trace_id).exists()
    assert exporter.get_finished_spans() == ()


class BrokenExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise ConnectionError("collector down")

    def shutdown(self) -> None:
        return None


def test_a_failing_exporter_never_costs_a_call_record(acme: Workspace, owner: User) -> None:
    with override_settings(OTEL_EXPORT_ENDPOINT=ENDPOINT):
        otel_exporter_use(BrokenExporter())
        response = _call(acme, owner, unique("hello"))

        assert call_records_flush() >= 1
        otel_flush()

    assert LlmTrace.objects.filter(trace_id=response.trace_id).exists()


def test_malformed_headers_disable_export_without_costing_a_record(
    acme: Workspace, owner: User
) -> None:
    with override_settings(OTEL_EXPORT_ENDPOINT=ENDPOINT, OTEL_EXPORT_HEADERS="no-equals-sign"):
        response = _call(acme, owner, unique("hello"))

        assert call_records_flush() >= 1

    assert LlmTrace.objects.filter(trace_id=response.trace_id).exists()


class Collector(BaseHTTPRequestHandler):
    """A loopback OTLP/HTTP endpoint: keeps each POST's headers and protobuf body."""

    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("OurCollector", (Collector,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api/public/otel/v1/traces", received
    finally:
        server.shutdown()
        server.server_close()


def test_the_otlp_http_exporter_posts_protobuf_spans_with_the_auth_header(
    acme: Workspace, owner: User, collector: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    endpoint, received = collector
    headers = "Authorization=Basic%20cGstbGYtMTIzOnNrLWxmLTQ1Ng=="
    with override_settings(OTEL_EXPORT_ENDPOINT=endpoint, OTEL_EXPORT_HEADERS=headers):
        response = _call(acme, owner, unique(f"Please write to {EMAIL}."))
        call_records_flush()
        assert otel_flush()

    assert received, "the collector received nothing"
    sent, body = received[-1]
    assert sent["authorization"] == "Basic cGstbGYtMTIzOnNrLWxmLTQ1Ng=="
    assert sent["content-type"] == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(body)
    spans = [s for r in request.resource_spans for ss in r.scope_spans for s in ss.spans]
    ours = [s for s in spans if s.trace_id == uuid.UUID(response.trace_id).bytes]
    assert len(ours) == 1
    attributes = {a.key: a.value for a in ours[0].attributes}
    assert attributes["gen_ai.operation.name"].string_value == "chat"
    assert attributes["aisaas.workspace"].string_value == "acme"
    assert EMAIL not in attributes["gen_ai.input.messages"].string_value
    assert "[EMAIL]" in attributes["gen_ai.input.messages"].string_value
