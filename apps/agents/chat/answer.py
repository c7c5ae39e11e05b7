"""The answer lifecycle: one user turn from the socket's frame to the stored answer and the
conversation's title. The chat consumer only forwards what `answer_stream` yields.

Frames, in order: `message` (the user's message, rendered; not on regenerate) · `answer` (the
empty answer's id) · `status` · `token`/`thinking`/`status`… · `error` (a refusal or a provider
failure) · `done` (how the answer ended, stored first) · later, maybe, `title`.

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
    llm_stream,
)
from apps.workspaces.models import User, Workspace

from . import services
from .rendering import render_markdown
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
    answer, and the call that will fill it."""

    question: Message | None
    question_html: str
    answer: Message
    request: ChatRequest
    scope: CallScope


@dataclass
class Ending:
    """How an answer ended, as `services.answer_finish` stores it."""

    status: str = Message.Status.ERROR
    error: str = "interrupted"
    reply: ChatResponse | None = None
    usage: Usage | None = None
    frames: list[Frame] = field(default_factory=list)  # error frames to send before `done`

    def fields(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error": self.error,
            "reply": self.reply,
            "usage": self.usage,
        }


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
        request = services.answer_request(workspace=workspace, answer=answer)
    except Exception:
        services.answer_finish(answer=answer, text="", status=Message.Status.ERROR, error="failed")
        raise
    scope = call_scope_for(
        workspace=workspace,
        actor=Actor("user", str(user.pk)),
        feature="chat",
        user=user,
        request_id=answer.request_id,
    )
    question = exchange.question
    return Turn(
        question=question,
        question_html=render_markdown(question.content) if question else "",
        answer=answer,
        request=request,
        scope=scope,
    )


@in_workspace_schema
def _finish(
    workspace: Workspace, answer: Message, text: str, ending: Ending
) -> tuple[Frame, ChatRequest | None]:
    services.answer_finish(answer=answer, text=text, **ending.fields())
    done = {
        "type": "done",
        "message_id": answer.pk,
        "status": ending.status,
        "html": render_markdown(answer.content),
        "feedback_html": render_to_string("agents/_feedback.html", {"m": answer}),
        "error": ending.error,
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
    yield {"type": "status", "message_id": answer.pk, "text": "thinking…"}
    text: list[str] = []
    ending = Ending()
    try:
        async for out in _stream(turn, text, ending, stop):
            yield out
    finally:
        done, title_request = await asyncio.shield(
            _finish(workspace, answer, "".join(text), ending)
        )
    for out in ending.frames:
        yield out
    yield done
    if title_request is not None:
        title = await _name(workspace, user, answer, title_request)
        if title is not None:
            yield {"type": "title", "conversation": answer.conversation_id, "title": title}


async def _stream(
    turn: Turn, text: list[str], ending: Ending, stop: asyncio.Event
) -> AsyncIterator[Frame]:
    """Run the call; fill `text` and `ending` as it goes (the caller stores them whatever
    happens)."""
    mid = turn.answer.pk
    try:
        async for event in until_stopped(stop, llm_stream(scope=turn.scope, request=turn.request)):
            if event is None:  # stopped
                _stopped(ending, text)
                return
            if isinstance(event, TokenEvent):
                text.append(event.text)
                yield {"type": "token", "message_id": mid, "text": event.text}
            elif isinstance(event, ThinkingEvent):
                yield {"type": "thinking", "message_id": mid, "text": event.text}
            elif isinstance(event, StatusEvent):
                yield {"type": "status", "message_id": mid, "text": event.message}
            elif isinstance(event, ErrorEvent):
                ending.status, ending.error = Message.Status.ERROR, event.message
                yield _error(event.message, message_id=mid, retryable=True)
            elif isinstance(event, DoneEvent) and ending.error == "interrupted":
                truncated = event.reason == "truncated"
                ending.status = Message.Status.ERROR if truncated else Message.Status.COMPLETE
                ending.reply, ending.usage, ending.error = event.response, event.usage, ""
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


def _stopped(ending: Ending, text: list[str]) -> None:
    ending.status, ending.error = Message.Status.STOPPED, ""
    ending.usage = Usage(output_tokens=count_tokens("".join(text)))


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
