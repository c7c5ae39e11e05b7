"""The answer lifecycle: one user turn from the socket's frame to the stored answer and the
conversation's title. The chat consumer only forwards what `answer_stream` yields.

Frames, in order: `message` (the user's message, rendered; not on regenerate) · `answer` (the
empty answer's id) · `status` (searching the documents, when the Assistant is grounded in
them; thinking) · `token`/`thinking`/`status`/`citation` (a passage the answer cites, when it
first does)… · `error` (a refusal or a provider failure) · `done` (how the answer ended, stored
first, with the sources panel) · later, maybe, `title`.

Stopping: the caller sets `stop`; the provider's stream is closed (the gateway settles exactly
the tokens produced), the partial answer is stored as "stopped" and `done` still follows. If the
caller cancels the iteration instead (a lost socket), the ending is stored all the same
(shielded from the cancel). After `done` the turn is over for the user: the caller may start
the next one while this one still names the conversation (best effort, the `fast` alias).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from django.http import Http404
from django.template.loader import render_to_string

from apps.agents.models import Message
from apps.common.channels import in_workspace_schema
from apps.common.errors import ApplicationError
from apps.common.streams import until_stopped
from apps.llm.services import (
    CREDIT_BALANCE,
    Actor,
    BudgetExceededError,
    CallScope,
    ChatRequest,
    ChatResponse,
    DoneEvent,
    ErrorEvent,
    GatewayError,
    StatusEvent,
    ThinkingEvent,
    TokenEvent,
    Usage,
    allm_chat,
    call_scope_for,
    count_tokens,
)
from apps.rag.grounding import Passage, cited
from apps.traces.masking import mask_value
from apps.workspaces.models import User, Workspace
from apps.workspaces.selectors import membership_get

from ..loop import (
    Parked,
    Resume,
    StepCapReached,
    ToolFinished,
    ToolStarted,
    agent_loop,
    calls_dump,
    messages_dump,
)
from . import services
from .rendering import cited_sources, render_answer, render_markdown, render_steps
from .selectors import access_conversation

log = structlog.get_logger(__name__)

Frame = dict[str, Any]

OUT_OF_CREDITS = (
    "Out of credits: this workspace's credit is used up. Owners and admins can top up or "
    "upgrade on the billing page (/billing/); members, ask an admin."
)


def refusal_text(exc: BudgetExceededError) -> str:
    """What the chat says when the gateway refused the reservation."""
    return OUT_OF_CREDITS if exc.denial.scope == CREDIT_BALANCE else exc.message


@dataclass(frozen=True)
class Turn:
    """A user turn, prepared in the database: the question (None when regenerating), the empty
    answer, and the scope of the call that will fill it."""

    question: Message | None
    question_html: str
    answer: Message
    scope: CallScope
    grounded: bool  # the Assistant answers from the workspace's documents
    agent: services.AgentSetup


@dataclass
class Ending:
    """How an answer ended, as `services.answer_finish` stores it."""

    status: str = Message.Status.ERROR
    error: str = "interrupted"
    reply: ChatResponse | None = None
    usage: Usage | None = None
    frames: list[Frame] = field(default_factory=list)  # error frames to send before `done`
    passages: list[Passage] = field(default_factory=list)  # what the answer may cite
    steps: list[dict[str, Any]] = field(default_factory=list)  # an agent's tool calls
    cost_micros: int = 0  # of every model call of the turn
    calls: int = 0
    summed: bool = False  # cost_micros is the answer's total (a resumed answer adds to it)
    state: dict[str, Any] | None = None  # a parked loop's state (resume.py)

    def fields(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error": self.error,
            "reply": self.reply,
            "usage": self.usage,
            "passages": self.passages,
            "steps": self.steps,
            "cost_micros": self.cost_micros if self.calls > 1 or self.summed else None,
            "agent_state": self.state,
        }


def turn_scope(
    workspace: Workspace, user: User, answer: Message, agent: services.AgentSetup
) -> CallScope:
    return call_scope_for(
        workspace=workspace,
        actor=Actor("user", str(user.pk)),
        feature="chat" if not agent.tools else "agent",
        user=user,
        request_id=answer.request_id,
        extra_scopes=agent.scopes,
    )


@in_workspace_schema
def _prepare(workspace: Workspace, user: User, kind: str, frame: dict[str, Any]) -> Turn:
    conversation = access_conversation(user=user, conversation_id=frame.get("conversation"))
    if kind == "send":
        exchange = services.message_post(
            conversation=conversation, user=user, text=frame.get("text")
        )
    else:
        exchange = services.answer_regenerate(conversation=conversation)
    answer = exchange.answer
    try:
        grounded = services.answer_grounded(workspace=workspace, answer=answer)
        agent = services.answer_agent(workspace=workspace, answer=answer, user=user)
    except Exception as exc:
        error = exc.message if isinstance(exc, ApplicationError) else "failed"
        services.answer_finish(answer=answer, text="", status=Message.Status.ERROR, error=error)
        raise
    scope = turn_scope(workspace, user, answer, agent)
    question = exchange.question
    return Turn(
        question=question,
        question_html=render_markdown(question.content) if question else "",
        answer=answer,
        scope=scope,
        grounded=grounded,
        agent=agent,
    )


@in_workspace_schema
def _request(workspace: Workspace, user: User, turn: Turn) -> services.AnswerRequest:
    """The call for the turn, with the passages it may cite (a search when grounded)."""
    try:
        return services.answer_request(
            workspace=workspace, answer=turn.answer, user=user, grounded=turn.grounded
        )
    except Exception:
        services.answer_finish(
            answer=turn.answer, text="", status=Message.Status.ERROR, error="failed"
        )
        raise


@in_workspace_schema
def finish(
    workspace: Workspace, user: User, answer: Message, text: str, ending: Ending
) -> tuple[Frame, ChatRequest | None]:
    """Store how the answer ended; the `done` frame (rendered for `user`, the conversation's
    owner) and the title call, if the conversation still needs one."""
    services.answer_finish(answer=answer, text=text, **ending.fields())
    done = {
        "type": "done",
        "message_id": answer.pk,
        "status": ending.status,
        "html": render_answer(answer.content, answer.sources),
        "sources_html": render_to_string(
            "agents/_sources.html", {"sources": cited_sources(answer.sources)}
        ),
        "feedback_html": render_to_string("agents/_feedback.html", {"m": answer}),
        "error": ending.error,
        "steps_html": render_steps(answer.steps, membership_get(workspace=workspace, user=user)),
        "model": answer.model,
        "offline": answer.offline,
        "usage": {"input": answer.input_tokens, "output": answer.output_tokens},
    }
    return done, services.title_request(conversation=answer.conversation)


@in_workspace_schema
def _title_scope(workspace: Workspace, user: User) -> CallScope:
    return call_scope_for(
        workspace=workspace, actor=Actor("user", str(user.pk)), feature="chat.title", user=None
    )


@in_workspace_schema
def _title_set(workspace: Workspace, answer: Message, title: str) -> str:
    return services.conversation_title_set(conversation=answer.conversation, title=title).title


async def answer_stream(
    *,
    workspace: Workspace,
    user: User,
    kind: str,
    frame: dict[str, Any],
    stop: asyncio.Event,
) -> AsyncIterator[Frame]:
    """The frames of one turn: `kind` is "send" (frame: conversation, text) or "regenerate"
    (frame: conversation). A refused turn yields one `error` frame and stores nothing."""
    try:
        turn = await _prepare(workspace, user, kind, frame)
    except ApplicationError as exc:
        yield _error(exc.message, field=exc.field, code=exc.code)
        return
    except Http404:
        yield _error("No such conversation.", code="not_found")
        return
    answer = turn.answer
    if turn.question is not None:
        yield {
            "type": "message",
            "id": turn.question.pk,
            "role": "user",
            "html": turn.question_html,
        }
    yield {
        "type": "answer",
        "message_id": answer.pk,
        "alias": answer.alias,
        "regenerate": turn.question is None,
    }
    text: list[str] = []
    ending = Ending()
    try:
        if turn.grounded:
            yield {"type": "status", "message_id": answer.pk, "text": "searching the documents…"}
        prepared = await _request(workspace, user, turn)
        ending.passages = prepared.passages
        yield {"type": "status", "message_id": answer.pk, "text": "thinking…"}
        async for out in stream(turn, prepared.request, text, ending, stop):
            yield out
    finally:
        done, title_request = await asyncio.shield(
            finish(workspace, user, answer, "".join(text), ending)
        )
    for out in ending.frames:
        yield out
    yield done
    if title_request is not None:
        title = await _name(workspace, user, answer, title_request)
        if title is not None:
            yield {"type": "title", "conversation": answer.conversation_id, "title": title}


async def stream(
    turn: Turn,
    request: ChatRequest,
    text: list[str],
    ending: Ending,
    stop: asyncio.Event,
    resume: Resume | None = None,
) -> AsyncIterator[Frame]:
    """Run the agent loop (one model call for an agent without tools), or resume a parked
    one; fill `text` and `ending` as it goes (the caller stores them whatever happens). A
    `citation` frame goes out when the answer first cites a passage; `tool_call` /
    `tool_result` around each tool call; a call held for approval parks the answer (status
    "waiting", its loop state in `ending.state`)."""
    mid = turn.answer.pk
    announced: set[int] = set()
    setup = turn.agent
    loop = agent_loop(
        scope=turn.scope,
        request=request,
        ctx=setup.ctx,
        tools=setup.tools,
        max_steps=setup.max_steps,
        resume=resume,
    )
    try:
        async for event in until_stopped(stop, loop):
            if event is None:  # stopped
                _stopped(ending, text)
                return
            if isinstance(event, TokenEvent):
                text.append(event.text)
                yield {"type": "token", "message_id": mid, "text": event.text}
                if ending.passages and "]" in event.text:
                    for passage in cited(ending.passages, "".join(text)):
                        if passage.n not in announced:
                            announced.add(passage.n)
                            yield {"type": "citation", "message_id": mid, **passage.as_dict()}
            elif isinstance(event, ThinkingEvent):
                yield {"type": "thinking", "message_id": mid, "text": event.text}
            elif isinstance(event, StatusEvent):
                yield {"type": "status", "message_id": mid, "text": event.message}
            elif isinstance(event, ErrorEvent):
                ending.status, ending.error = Message.Status.ERROR, event.message
                yield _error(event.message, message_id=mid, retryable=True)
            elif isinstance(event, DoneEvent):
                _step_done(ending, event)
            elif isinstance(event, ToolStarted):
                yield {
                    "type": "tool_call",
                    "message_id": mid,
                    "step": event.step,
                    "call_id": event.call.id,
                    "name": event.call.name,
                    "args": event.call.arguments,
                }
            elif isinstance(event, ToolFinished):
                step = {
                    "step": event.step,
                    "call_id": event.call.id,
                    "name": event.call.name,
                    "args": mask_value(event.call.arguments),
                    "status": event.outcome.status,
                    "summary": event.outcome.summary,
                    "audit_id": event.outcome.audit_id,
                    "approval_id": event.outcome.approval_id,
                    "level": event.outcome.level,
                }
                _step_record(ending, step)
                yield {"type": "tool_result", "message_id": mid, **step}
            elif isinstance(event, Parked):
                ending.status, ending.error = Message.Status.WAITING, ""
                ending.state = {
                    "step": event.step,
                    "messages": messages_dump(event.messages),
                    "held": [calls_dump(call) for call in event.held],
                    "prompt": [request.prompt_name, request.prompt_version],
                }
            elif isinstance(event, StepCapReached):
                message = (
                    f"The agent stopped after {event.steps} steps without a final answer "
                    "(its step limit). Ask again more specifically, or raise the limit."
                )
                ending.status, ending.error = Message.Status.ERROR, message
                yield _error(message, message_id=mid)
        if ending.error == "interrupted":
            ending.status, ending.error = Message.Status.COMPLETE, ""
    except BudgetExceededError as exc:
        refusal = refusal_text(exc)
        ending.status, ending.error = Message.Status.ERROR, refusal
        budget = {"scope": exc.denial.scope, "resets_at": exc.denial.resets_at}
        ending.frames.append(_error(refusal, message_id=mid, budget=budget))
    except GatewayError as exc:
        ending.status, ending.error = Message.Status.ERROR, exc.message
        ending.frames.append(_error(exc.message, message_id=mid, retryable=True))
    except asyncio.CancelledError:
        _stopped(ending, text)
        raise


def _step_record(ending: Ending, step: dict[str, Any]) -> None:
    """A step's card: a held call called again on resume replaces its own card."""
    for index, known in enumerate(ending.steps):
        if known.get("call_id") == step["call_id"] and known.get("step") == step["step"]:
            ending.steps[index] = step
            return
    ending.steps.append(step)


def _step_done(ending: Ending, event: DoneEvent) -> None:
    """One model call finished: its usage and cost add up; the last one names the model."""
    ending.calls += 1
    ending.reply = event.response
    ending.usage = event.usage if ending.usage is None else ending.usage + event.usage
    ending.cost_micros += event.response.cost_micros if event.response is not None else 0
    if ending.error in ("interrupted", ""):
        truncated = event.reason == "truncated"
        ending.status = Message.Status.ERROR if truncated else Message.Status.COMPLETE
        ending.error = ""


def _stopped(ending: Ending, text: list[str]) -> None:
    ending.status, ending.error = Message.Status.STOPPED, ""
    earlier = ending.usage.input_tokens if ending.usage is not None else 0  # finished steps
    ending.usage = Usage(input_tokens=earlier, output_tokens=count_tokens("".join(text)))


async def _name(
    workspace: Workspace, user: User, answer: Message, request: ChatRequest
) -> str | None:
    """Name the conversation after its first exchange (the `fast` alias, a prompt file). Best
    effort: a failure leaves it "New conversation" and never touches the answer."""
    try:
        scope = await _title_scope(workspace, user)
        reply = await allm_chat(scope=scope, request=request)
        return await _title_set(workspace, answer, str((reply.parsed or {})["title"]))
    except GatewayError as exc:
        log.warning("chat.title_failed", error=exc.message)
    except Exception:  # e.g. the conversation was deleted meanwhile
        log.warning("chat.title_failed", exc_info=True)
    return None


def _error(message: str, *, retryable: bool = False, **extra: Any) -> Frame:
    return {"type": "error", "message": message, "retryable": retryable, **extra}
