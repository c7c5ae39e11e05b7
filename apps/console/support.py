"""Support staff and traces: the audited reads behind the trace admin (issue #8, items 1 and 6).

Every staff view of a trace page, of its unmasked content, and every download writes one
TraceAccess row; so does each replay (apps/console/replay.py). Pages never carry megabytes: any
text past settings.TRACE_DISPLAY_MAX_CHARS is cut, and so is the page as a whole past ten of
those, with the full trace one (audited) download away.

Traces live in the public schema and cross workspaces by design: these functions are for
platform staff only, and each checks the user before reading content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django_tenants.utils import schema_context

from apps.agents.models import Message as ChatMessage
from apps.billing.ledger import credits
from apps.common.errors import NotFoundError
from apps.traces.models import LlmCallLog, LlmTrace, LlmTraceRaw, TraceAccess, TraceAccessAction
from apps.workspaces.models import User

from .permissions import require_trace_content

# The page as a whole shows at most this many TRACE_DISPLAY_MAX_CHARS (a thousand short
# messages must not add up to megabytes either).
PAGE_TEXTS = 10


@dataclass(frozen=True, slots=True)
class Shown:
    """A text as shown on the page: possibly cut, with its full length."""

    text: str
    length: int

    @property
    def truncated(self) -> bool:
        return len(self.text) < self.length


class Clipper:
    """Cuts texts to the per-text limit and to what is left of the page's budget."""

    def __init__(self, limit: int | None = None):
        self.limit = limit if limit is not None else settings.TRACE_DISPLAY_MAX_CHARS
        self.left = self.limit * PAGE_TEXTS
        self.truncated = False

    def __call__(self, value: Any) -> Shown:
        text = value if isinstance(value, str) else _json(value)
        shown = text[: max(0, min(self.limit, self.left))]
        self.left -= len(shown)
        if len(shown) < len(text):
            self.truncated = True
        return Shown(shown, len(text))


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class ShownToolCall:
    id: str
    name: str
    arguments: Shown


@dataclass(frozen=True, slots=True)
class Bubble:
    """One message of the conversation: system, user, assistant (maybe calling tools), tool."""

    role: str
    content: Shown
    name: str = ""
    tool_call_id: str = ""
    tool_calls: tuple[ShownToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class TracePage:
    """Everything the trace page renders, cut to size."""

    trace: LlmTrace
    call: LlmCallLog
    raw: bool  # the unmasked copy is shown
    raw_available: bool
    bubbles: tuple[Bubble, ...]
    omitted_messages: int  # left out once the page's budget was spent
    response: Shown
    response_tool_calls: tuple[ShownToolCall, ...]
    thinking: Shown
    tools: Shown
    request_options: Shown  # params and response_format
    metadata: Shown
    cost_credits: Decimal
    conversation_url: str | None
    truncated: bool
    extra: dict[str, Any] = field(default_factory=dict)


def trace_for_staff(*, user: User, pk: int | str) -> LlmTrace:
    """The trace with primary key `pk`, with its call and workspace, for a support user."""
    require_trace_content(user)
    try:
        return LlmTrace.objects.select_related("call", "workspace").get(pk=int(pk))
    except (ValueError, TypeError, LlmTrace.DoesNotExist) as exc:
        raise NotFoundError("No such trace.") from exc


def trace_access_record(
    *, user: User, action: str, trace: LlmTrace, detail: dict[str, Any] | None = None
) -> TraceAccess:
    """The audit row of one staff access to `trace` (who, what, when)."""
    return TraceAccess.objects.create(
        user=user,
        user_email=user.email,
        action=action,
        trace_id=trace.trace_id,
        workspace_id=trace.workspace_id,
        detail=detail or {},
    )


def _tool_calls(raw: Any, clip: Clipper) -> tuple[ShownToolCall, ...]:
    calls = raw if isinstance(raw, list) else []
    return tuple(
        ShownToolCall(
            id=str(call.get("id", "")),
            name=str(call.get("name", "")),
            arguments=clip(call.get("arguments", {})),
        )
        for call in calls
        if isinstance(call, dict)
    )


def _bubbles(messages: Any, clip: Clipper) -> tuple[tuple[Bubble, ...], int]:
    """The messages as bubbles until the page's budget is spent, and how many were left out."""
    messages = messages if isinstance(messages, list) else []
    found: list[Bubble] = []
    for message in messages:
        if clip.left <= 0:
            clip.truncated = True
            break
        if not isinstance(message, dict):
            found.append(Bubble(role="unknown", content=clip(message)))
            continue
        found.append(
            Bubble(
                role=str(message.get("role", "unknown")),
                content=clip(message.get("content") or ""),
                name=str(message.get("name") or ""),
                tool_call_id=str(message.get("tool_call_id") or ""),
                tool_calls=_tool_calls(message.get("tool_calls"), clip),
            )
        )
    return tuple(found), len(messages) - len(found)


def trace_conversation_url(*, trace: LlmTrace) -> str | None:
    """The chat conversation whose answer this call produced, on the workspace's host; None
    for calls made outside chat. One query in the workspace's schema."""
    workspace = trace.workspace
    with schema_context(workspace.schema_name):
        conversation_id = (
            ChatMessage.objects.filter(trace_id=trace.trace_id)
            .values_list("conversation_id", flat=True)
            .first()
        )
    if conversation_id is None:
        return None
    return f"{workspace.url}chat/c/{conversation_id}/"


def trace_view(*, user: User, pk: int | str, raw: bool = False) -> TracePage:
    """The trace page for a support user: masked content, or the unmasked copy when `raw`
    (refused once retention deleted it). Audited as `view` or `view_raw`."""
    trace = trace_for_staff(user=user, pk=pk)
    raw_copy = LlmTraceRaw.objects.filter(trace=trace).first() if raw else None
    if raw and raw_copy is None:
        raise NotFoundError(
            "The unmasked copy of this trace is gone (raw content is kept only briefly); "
            "the masked copy is shown."
        )
    raw_available = raw_copy is not None or LlmTraceRaw.objects.filter(trace=trace).exists()
    source: LlmTrace | LlmTraceRaw = raw_copy or trace
    clip = Clipper()
    call = trace.call
    # The answer first: past a long history, it is what support came to see.
    response = clip(source.response)
    bubbles, omitted = _bubbles(source.messages, clip)
    page = TracePage(
        trace=trace,
        call=call,
        raw=raw_copy is not None,
        raw_available=raw_available,
        bubbles=bubbles,
        omitted_messages=omitted,
        response=response,
        response_tool_calls=_tool_calls(source.tool_calls, clip),
        thinking=clip(source.thinking),
        tools=clip(trace.tools),
        request_options=clip({"params": trace.params, "response_format": trace.response_format}),
        metadata=clip(trace.metadata),
        cost_credits=credits(call.cost_micros),
        conversation_url=trace_conversation_url(trace=trace),
        truncated=clip.truncated,
    )
    action = TraceAccessAction.VIEW_RAW if page.raw else TraceAccessAction.VIEW
    trace_access_record(user=user, action=action, trace=trace)
    return page


def trace_export(*, user: User, pk: int | str) -> dict[str, Any]:
    """The whole masked trace and its call-log row as one JSON-ready dict (the download).
    Audited as `download`."""
    trace = trace_for_staff(user=user, pk=pk)
    call = trace.call
    exported = {
        "trace_id": str(trace.trace_id),
        "workspace": trace.workspace.slug,
        "call": {f.attname: getattr(call, f.attname) for f in LlmCallLog._meta.concrete_fields},
        "messages": trace.messages,
        "tools": trace.tools,
        "response_format": trace.response_format,
        "params": trace.params,
        "response": trace.response,
        "tool_calls": trace.tool_calls,
        "thinking": trace.thinking,
        "safety_signals": trace.safety_signals,
        "metadata": trace.metadata,
        "masked": trace.masked,
        "score": trace.score,
        "score_comment": trace.score_comment,
        "created_at": trace.created_at,
    }
    trace_access_record(
        user=user, action=TraceAccessAction.DOWNLOAD, trace=trace, detail={"format": "json"}
    )
    return exported
