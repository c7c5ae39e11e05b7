"""The chat socket (`/ws/chat/` on a workspace host): the browser sends messages, stop and
regenerate; the answer streams back as typed events.

In:  {"type": "send", "conversation": id, "text": "…"} · {"type": "stop"} ·
     {"type": "regenerate", "conversation": id}
Out: {"type": "message", …} (the user's message, rendered) · {"type": "answer", "message_id"}
     · {"type": "status", "text"} · {"type": "token", "text"} · {"type": "thinking", "text"}
     · {"type": "error", "message", "retryable"} · {"type": "done", "status", "html", …}
     · {"type": "title", "conversation", "title"}

One answer streams at a time per socket. Stop, or a closed tab, cancels it: the gateway closes
the provider's stream and settles exactly the tokens produced, and the partial answer is kept
as "stopped". Bad frames get an `error` event; the socket stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import structlog
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import Http404
from django.template.loader import render_to_string

from apps.common.channels import in_workspace_schema
from apps.common.errors import ApplicationError
from apps.llm.config import call_scope_for
from apps.llm.core.context import Actor, CallScope
from apps.llm.core.errors import CREDIT_BALANCE, BudgetExceededError, GatewayError
from apps.llm.core.tokens import count_tokens
from apps.llm.core.types import (
    ChatRequest,
    DoneEvent,
    ErrorEvent,
    StatusEvent,
    ThinkingEvent,
    TokenEvent,
    Usage,
)
from apps.llm.services import allm_chat, llm_stream
from apps.workspaces.models import User, Workspace
from apps.workspaces.selectors import membership_get

from . import services
from .models import Message
from .rendering import render_markdown
from .selectors import access_conversation

log = structlog.get_logger(__name__)


OUT_OF_CREDITS = (
    "Out of credits: this workspace's credit is used up. Owners and admins can top up or "
    "upgrade on the billing page (/billing/); members, ask an admin."
)


def _refusal(exc: BudgetExceededError) -> str:
    """What the chat says when the gateway refused the reservation."""
    return OUT_OF_CREDITS if exc.denial.scope == CREDIT_BALANCE else exc.message


@in_workspace_schema
def _is_member(workspace: Workspace, user: User) -> bool:
    return membership_get(workspace=workspace, user=user) is not None


@in_workspace_schema
def _post(workspace: Workspace, user: User, conversation_id: Any, text: Any) -> dict[str, Any]:
    conversation = access_conversation(user=user, conversation_id=conversation_id)
    exchange = services.message_post(conversation=conversation, user=user, text=text)
    return _prepared(workspace, user, exchange)


@in_workspace_schema
def _regenerate(workspace: Workspace, user: User, conversation_id: Any) -> dict[str, Any]:
    conversation = access_conversation(user=user, conversation_id=conversation_id)
    exchange = services.answer_regenerate(conversation=conversation)
    return _prepared(workspace, user, exchange)


def _prepared(workspace: Workspace, user: User, exchange: services.Exchange) -> dict[str, Any]:
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
    return {
        "question": question,
        "question_html": render_markdown(question.content) if question else "",
        "answer": answer,
        "request": request,
        "scope": scope,
    }


@in_workspace_schema
def _finish(workspace: Workspace, answer: Message, **fields: Any) -> dict[str, Any]:
    services.answer_finish(answer=answer, **fields)
    title = services.title_request(conversation=answer.conversation)
    return {
        "html": render_markdown(answer.content),
        "feedback_html": render_to_string("agents/_feedback.html", {"m": answer}),
        "title_request": title,
    }


@in_workspace_schema
def _title(workspace: Workspace, answer: Message, title: str) -> str:
    return services.conversation_title_set(conversation=answer.conversation, title=title).title


class ChatConsumer(AsyncJsonWebsocketConsumer):
    workspace: Workspace
    user: User

    async def connect(self) -> None:
        workspace, user = self.scope.get("workspace"), self.scope.get("user")
        if workspace is None or user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        if not await _is_member(workspace, user):
            await self.close(code=4404)  # an outsider learns nothing
            return
        self.workspace, self.user = workspace, user
        self.streaming: asyncio.Task[None] | None = None
        self.background: set[asyncio.Task[None]] = set()
        await self.accept()

    async def disconnect(self, code: int) -> None:
        # A closed tab or a lost socket stops the answer, like the stop button.
        if hasattr(self, "streaming"):
            await self._stop()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        try:
            frame = json.loads(text_data or "")
        except ValueError:
            frame = None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self._error('Send JSON like {"type": "send", "conversation": 1, "text": "…"}.')
            return
        kind = frame["type"]
        if kind == "stop":
            await self._stop()
        elif kind in ("send", "regenerate"):
            await self._start(kind, frame)
        else:
            await self._error(f"Unknown message type “{kind[:40]}”; use send, stop or regenerate.")

    async def _error(self, message: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "message": message, "retryable": False, **extra})

    async def _stop(self) -> None:
        if self.streaming is not None and not self.streaming.done():
            self.streaming.cancel()
            await asyncio.gather(self.streaming, return_exceptions=True)

    async def _start(self, kind: str, frame: dict[str, Any]) -> None:
        if self.streaming is not None and not self.streaming.done():
            await self._error(
                "An answer is still being written: wait for it or press Stop, then send again."
            )
            return
        try:
            if kind == "send":
                prepared = await _post(
                    self.workspace, self.user, frame.get("conversation"), frame.get("text")
                )
            else:
                prepared = await _regenerate(self.workspace, self.user, frame.get("conversation"))
        except ApplicationError as exc:
            await self._error(exc.message, field=exc.field, code=exc.code)
            return
        except Http404:
            await self._error("No such conversation.", code="not_found")
            return
        question: Message | None = prepared["question"]
        answer: Message = prepared["answer"]
        if question is not None:
            await self.send_json(
                {
                    "type": "message",
                    "id": question.pk,
                    "role": "user",
                    "html": prepared["question_html"],
                }
            )
        await self.send_json(
            {
                "type": "answer",
                "message_id": answer.pk,
                "alias": answer.alias,
                "regenerate": question is None,
            }
        )
        self.streaming = asyncio.ensure_future(
            self._answer(answer, prepared["request"], prepared["scope"])
        )

    async def _answer(self, answer: Message, request: ChatRequest, scope: CallScope) -> None:
        """Stream one answer; store how it ended whatever happens (shielded from the cancel)."""
        text: list[str] = []
        ending: dict[str, Any] = {"status": Message.Status.ERROR, "error": "interrupted"}
        mid = answer.pk
        try:
            await self.send_json({"type": "status", "message_id": mid, "text": "thinking…"})
            async for event in llm_stream(scope=scope, request=request):
                if isinstance(event, TokenEvent):
                    text.append(event.text)
                    await self.send_json({"type": "token", "message_id": mid, "text": event.text})
                elif isinstance(event, ThinkingEvent):
                    await self.send_json(
                        {"type": "thinking", "message_id": mid, "text": event.text}
                    )
                elif isinstance(event, StatusEvent):
                    await self.send_json(
                        {"type": "status", "message_id": mid, "text": event.message}
                    )
                elif isinstance(event, ErrorEvent):
                    ending = {"status": Message.Status.ERROR, "error": event.message}
                    await self.send_json(
                        {
                            "type": "error",
                            "message_id": mid,
                            "message": event.message,
                            "retryable": True,
                        }
                    )
                elif isinstance(event, DoneEvent) and ending.get("error") == "interrupted":
                    status = (
                        Message.Status.ERROR
                        if event.reason == "truncated"
                        else Message.Status.COMPLETE
                    )
                    ending = {
                        "status": status,
                        "reply": event.response,
                        "usage": event.usage,
                        "error": "",
                    }
            if ending.get("error") == "interrupted":
                ending = {"status": Message.Status.COMPLETE, "error": ""}
        except BudgetExceededError as exc:
            refusal = _refusal(exc)
            ending = {"status": Message.Status.ERROR, "error": refusal}
            await self.send_json(
                {
                    "type": "error",
                    "message_id": mid,
                    "message": refusal,
                    "retryable": False,
                    "budget": {"scope": exc.denial.scope, "resets_at": exc.denial.resets_at},
                }
            )
        except GatewayError as exc:
            ending = {"status": Message.Status.ERROR, "error": exc.message}
            await self.send_json(
                {"type": "error", "message_id": mid, "message": exc.message, "retryable": True}
            )
        except asyncio.CancelledError:
            produced = "".join(text)
            ending = {
                "status": Message.Status.STOPPED,
                "usage": Usage(output_tokens=count_tokens(produced)),
                "error": "",
            }
            raise
        finally:
            await asyncio.shield(self._ended(answer, "".join(text), ending))

    async def _ended(self, answer: Message, text: str, ending: dict[str, Any]) -> None:
        result = await _finish(self.workspace, answer, text=text, **ending)
        stored = answer
        event = {
            "type": "done",
            "message_id": stored.pk,
            "status": ending["status"],
            "html": result["html"],
            "feedback_html": result["feedback_html"],
            "error": ending.get("error", ""),
            "model": stored.model,
            "offline": stored.offline,
            "usage": {"input": stored.input_tokens, "output": stored.output_tokens},
        }
        try:
            await self.send_json(event)
        except Exception:  # the socket is gone (a closed tab): the answer is stored anyway
            log.info("chat.done_not_delivered", message_id=stored.pk)
        title_request = result["title_request"]
        if title_request is not None:
            task = asyncio.ensure_future(self._name(answer, title_request))
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    async def _name(self, answer: Message, request: ChatRequest) -> None:
        """Name the conversation after its first exchange (the `fast` alias, a prompt file).
        Best effort: a failure leaves it "New conversation" and never touches the answer."""
        try:
            scope = await _title_scope(self.workspace, self.user)
            reply = await allm_chat(scope=scope, request=request)
            title = await _title(self.workspace, answer, str((reply.parsed or {})["title"]))
        except GatewayError as exc:
            log.warning("chat.title_failed", error=exc.message)
            return
        except Exception:  # e.g. the conversation was deleted meanwhile
            log.warning("chat.title_failed", exc_info=True)
            return
        with contextlib.suppress(Exception):  # the tab was closed: the title is stored anyway
            await self.send_json(
                {"type": "title", "conversation": answer.conversation_id, "title": title}
            )


@in_workspace_schema
def _title_scope(workspace: Workspace, user: User) -> CallScope:
    return call_scope_for(
        workspace=workspace, actor=Actor("user", str(user.pk)), feature="chat.title", user=None
    )
