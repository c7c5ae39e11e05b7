"""Replay: re-run a recorded call through the gateway and compare the answers (issue #8, item 2).

The replay is a real gateway call — budgeted, metered and traced as feature `admin.replay` — in
the platform's own workspace (settings.PLATFORM_WORKSPACE), so it is billed to the platform and
never to the workspace whose trace it is. The actor is the support user. It sends the unmasked
messages while retention keeps them, else the masked copy (the page says which); the same alias
and prompt version by default, or others chosen from the routing table and the prompt's files.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from apps.common.errors import ApplicationError
from apps.llm.prompts import PromptError, PromptVersion, default_library, variables_from
from apps.llm.services import (
    Actor,
    BudgetExceededError,
    ChatRequest,
    GatewayError,
    Message,
    ResponseFormat,
    Tool,
    ToolCall,
    limits_for,
    llm_chat,
    routing_table,
)
from apps.traces.models import LlmTrace, LlmTraceRaw, TraceAccessAction
from apps.workspaces.ai import ai_settings_get
from apps.workspaces.models import User, Workspace
from apps.workspaces.services import system_workspace_get_or_create

from .permissions import require_trace_content
from .support import trace_access_record

FEATURE = "admin.replay"
ROLES = ("system", "user", "assistant", "tool")
_WORDS = re.compile(r"\S+\s*|\s+")


class ReplayError(ApplicationError):
    """A replay that cannot run or did not produce an answer; the message says what to do."""

    code = "replay_failed"


@dataclass(frozen=True, slots=True)
class ReplayChoices:
    """What the replay form offers for a trace, and what is wrong with its recorded choices."""

    aliases: tuple[str, ...]
    alias: str | None  # the recorded alias, when the routing table still has it
    prompt_name: str
    versions: tuple[str, ...]
    version: str | None  # the recorded version, when its file still exists
    uses_raw: bool
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReplayResult:
    original: str
    answer: str
    diff_html: SafeString
    trace_id: str
    alias: str
    provider: str
    model: str
    prompt_version: str | None
    used_raw: bool
    offline: bool
    cost_micros: int


def platform_workspace() -> Workspace:
    """The workspace replays run in, created on first use (enterprise plan, system owner)."""
    return system_workspace_get_or_create(
        slug=settings.PLATFORM_WORKSPACE, name="Platform (system)"
    )


def _chat_aliases() -> tuple[str, ...]:
    return tuple(routing_table().names(kind="chat"))


def _versions(name: str) -> tuple[str, ...]:
    try:
        return tuple(default_library().versions(name))
    except PromptError:
        return ()


def _alias_missing(alias: str, aliases: tuple[str, ...]) -> str:
    return (
        f"The alias “{alias}” is no longer in the routing table; "
        f"choose one of: {', '.join(aliases)}."
    )


def _version_missing(name: str, version: str, versions: tuple[str, ...]) -> str:
    offer = f"choose one of: {', '.join(versions)}" if versions else "no version file is left"
    return (
        f"Prompt {name} has no version {version} any more; {offer} "
        "(or replay the recorded prompt text unchanged)."
    )


def replay_choices(*, trace: LlmTrace) -> ReplayChoices:
    """The form's choices for `trace`, with a warning for each recorded choice that is gone."""
    call = trace.call
    aliases = _chat_aliases()
    warnings = []
    alias = call.alias if call.alias in aliases else None
    if alias is None:
        warnings.append(_alias_missing(call.alias, aliases))
    versions = _versions(call.prompt_name) if call.prompt_name else ()
    version = call.prompt_version if call.prompt_version in versions else None
    if call.prompt_name and call.prompt_version and version is None:
        warnings.append(_version_missing(call.prompt_name, call.prompt_version, versions))
    return ReplayChoices(
        aliases=aliases,
        alias=alias,
        prompt_name=call.prompt_name,
        versions=versions,
        version=version,
        uses_raw=LlmTraceRaw.objects.filter(trace=trace).exists(),
        warnings=tuple(warnings),
    )


def _message(data: Any, index: int) -> Message:
    if not isinstance(data, dict) or data.get("role") not in ROLES:
        raise ReplayError(f"Recorded message {index} is malformed; this trace cannot be replayed.")
    calls = data.get("tool_calls") or []
    return Message(
        role=data["role"],
        content=str(data.get("content") or ""),
        tool_calls=tuple(
            ToolCall(id=str(c.get("id", "")), name=str(c["name"]), arguments=c.get("arguments", {}))
            for c in calls
            if isinstance(c, dict) and "name" in c
        ),
        tool_call_id=data.get("tool_call_id"),
        name=data.get("name"),
    )


def _load(name: str, version: str) -> PromptVersion | None:
    try:
        return default_library().load(name, version)
    except PromptError:
        return None


def _rerender(
    messages: list[Message], *, name: str, recorded: str, target: str, versions: tuple[str, ...]
) -> list[Message]:
    """`messages` with the prompt's message rendered again from version `target`, its variables
    read back from the recorded text (with the recorded version's template, or any other's)."""
    prompt = _load(name, target)
    if prompt is None:
        raise ReplayError(_version_missing(name, target, versions), field="prompt_version")
    templates = [p for p in (_load(name, v) for v in (recorded, *versions)) if p is not None]
    for index, message in enumerate(messages):
        if message.role != prompt.role:
            continue
        for template in templates:
            found = variables_from(template, message.content)
            if found is None:
                continue
            try:
                text = default_library().render(name, found, version=target).text
            except PromptError as exc:
                raise ReplayError(
                    f"Version {target} of {name} cannot be rendered with the recorded "
                    f"variables: {exc.message}",
                    field="prompt_version",
                ) from exc
            return [*messages[:index], Message(prompt.role, text), *messages[index + 1 :]]
    raise ReplayError(
        f"The recorded {prompt.role} message was not rendered from any version of {name}, so "
        "it cannot be rendered again; replay the recorded prompt text unchanged.",
        field="prompt_version",
    )


def _request(
    trace: LlmTrace, messages: list[Message], *, alias: str, version: str | None, max_tokens: int
) -> ChatRequest:
    call = trace.call
    recorded_max = trace.params.get("max_tokens") if isinstance(trace.params, dict) else None
    temperature = trace.params.get("temperature") if isinstance(trace.params, dict) else None
    fmt = trace.response_format if isinstance(trace.response_format, dict) else None
    try:
        tools = tuple(Tool(**t) for t in trace.tools or [])
        response_format = ResponseFormat(**fmt) if fmt else None
    except TypeError as exc:
        raise ReplayError("The recorded tools or response format are malformed.") from exc
    return ChatRequest(
        alias=alias,
        messages=tuple(messages),
        max_tokens=min(int(recorded_max), max_tokens) if recorded_max else None,
        temperature=temperature,
        tools=tools,
        response_format=response_format,
        cache=False,  # a replay asks the model again, never the exact cache
        prompt_name=call.prompt_name or None,
        prompt_version=version or call.prompt_version or None,
        metadata={"replay_of": str(trace.trace_id)},
    )


def answer_diff(original: str, answer: str) -> SafeString:
    """A word-level diff of two answers as escaped HTML: <del> for removed, <ins> for added."""
    limit = settings.TRACE_DISPLAY_MAX_CHARS
    # Words with their trailing space: a changed passage reads as one deletion and one insertion.
    old, new = _WORDS.findall(original[:limit]), _WORDS.findall(answer[:limit])
    parts: list[str] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            parts.append(escape("".join(old[a1:a2])))
            continue
        if a2 > a1:
            parts.append(f"<del>{escape(''.join(old[a1:a2]))}</del>")
        if b2 > b1:
            parts.append(f"<ins>{escape(''.join(new[b1:b2]))}</ins>")
    return mark_safe("".join(parts))  # noqa: S308 — every piece is escaped above


def trace_replay(
    *, user: User, trace: LlmTrace, alias: str | None = None, prompt_version: str | None = None
) -> ReplayResult:
    """Run `trace`'s request again with `alias` (default: the recorded one) and, for a prompt
    trace, `prompt_version` (None: the recorded prompt text unchanged). Audited as `replay`
    (also when the gateway refuses or fails); ReplayError says what went wrong."""
    require_trace_content(user)
    call = trace.call
    aliases = _chat_aliases()
    alias = alias or call.alias
    if alias not in aliases:
        raise ReplayError(_alias_missing(alias, aliases), field="alias")
    raw = LlmTraceRaw.objects.filter(trace=trace).first()
    messages = [_message(m, i) for i, m in enumerate((raw or trace).messages or [])]
    if not messages:
        raise ReplayError("The trace recorded no messages; there is nothing to replay.")
    if prompt_version:
        if not call.prompt_name:
            raise ReplayError("This call used no prompt file; replay it without a prompt version.")
        messages = _rerender(
            messages,
            name=call.prompt_name,
            recorded=call.prompt_version,
            target=prompt_version,
            versions=_versions(call.prompt_name),
        )
    workspace = platform_workspace()
    limits = limits_for(workspace, ai_settings_get(workspace=workspace))
    request = _request(
        trace, messages, alias=alias, version=prompt_version, max_tokens=limits.max_tokens
    )
    detail: dict[str, Any] = {
        "alias": alias,
        "prompt_version": prompt_version or "",
        "used_raw": raw is not None,
        "platform_workspace": workspace.slug,
    }
    try:
        response = llm_chat(
            workspace=workspace,
            actor=Actor("user", str(user.pk)),
            feature=FEATURE,
            request=request,
            user=user,
        )
    except BudgetExceededError as exc:
        trace_access_record(
            user=user,
            action=TraceAccessAction.REPLAY,
            trace=trace,
            detail={**detail, "error": exc.code, "scope": exc.denial.scope},
        )
        raise ReplayError(
            f"Replay refused: the platform workspace “{workspace.slug}” has exhausted its "
            f"{exc.denial.scope} budget. {exc.message}"
        ) from exc
    except GatewayError as exc:
        trace_access_record(
            user=user,
            action=TraceAccessAction.REPLAY,
            trace=trace,
            detail={**detail, "error": exc.code},
        )
        raise ReplayError(f"The replay failed: {exc.message}") from exc
    trace_access_record(
        user=user,
        action=TraceAccessAction.REPLAY,
        trace=trace,
        detail={**detail, "new_trace_id": response.trace_id},
    )
    original = (raw or trace).response
    return ReplayResult(
        original=original,
        answer=response.text,
        diff_html=answer_diff(original, response.text),
        trace_id=response.trace_id,
        alias=response.alias,
        provider=response.provider,
        model=response.model,
        prompt_version=prompt_version,
        used_raw=raw is not None,
        offline=response.offline,
        cost_micros=response.cost_micros,
    )
