"""Chat: conversations, messages, answers, feedback. Sync (the ORM), run inside the workspace's
schema; the answer lifecycle (answer.py) calls them from its database thread."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.db import transaction

from apps.agents.models import Agent, Conversation, Message
from apps.agents.services import agent_default
from apps.common.errors import ApplicationError
from apps.llm.prompts import render_prompt
from apps.llm.services import ChatRequest, ChatResponse, Usage
from apps.llm.services import Message as LlmMessage
from apps.traces.models import LlmCallLog
from apps.traces.rollups import trace_score_set
from apps.traces.services import call_records_flush
from apps.workspaces.models import User, Workspace

log = structlog.get_logger(__name__)

Status = Message.Status


def conversation_create(*, user: User, agent: Agent | None = None) -> Conversation:
    return Conversation.objects.create(agent=agent or agent_default(), user_id=user.pk)


def _clean_text(text: object) -> str:
    if not isinstance(text, str):
        raise ApplicationError("Type a message.", field="text")
    text = text.replace("\x00", "").strip()
    if not text:
        raise ApplicationError("Type a message.", field="text")
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise ApplicationError(
            f"That message is {len(text):,} characters long; the limit is {limit:,}. "
            "Shorten it or split it in parts.",
            field="text",
        )
    return text


def _streaming(conversation: Conversation) -> bool:
    return conversation.messages.filter(status=Status.STREAMING).exists()


def _refuse_while_streaming(conversation: Conversation) -> None:
    if _streaming(conversation):
        raise ApplicationError(
            "An answer is still being written: wait for it or press Stop, then send again.",
            field="text",
        )


@dataclass(frozen=True)
class Exchange:
    question: Message | None
    answer: Message


def _answer_for(conversation: Conversation) -> Message:
    return Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        author_type=Message.Author.AGENT,
        author_id=str(conversation.agent_id),
        status=Status.STREAMING,
        alias=conversation.agent.alias,
        request_id=f"chat-{uuid.uuid4().hex}",
    )


def message_post(*, conversation: Conversation, user: User, text: object) -> Exchange:
    """The user's message and the (empty, streaming) answer it asks for."""
    text = _clean_text(text)
    with transaction.atomic():
        Conversation.objects.select_for_update().filter(pk=conversation.pk).first()
        _refuse_while_streaming(conversation)
        question = Message.objects.create(
            conversation=conversation,
            role=Message.Role.USER,
            author_type=Message.Author.USER,
            author_id=str(user.pk),
            content=text,
        )
        answer = _answer_for(conversation)
        conversation.save(update_fields=["updated_at"])
    return Exchange(question=question, answer=answer)


def answer_regenerate(*, conversation: Conversation) -> Exchange:
    """A new answer to the last question; the previous answer stays in the history."""
    with transaction.atomic():
        Conversation.objects.select_for_update().filter(pk=conversation.pk).first()
        _refuse_while_streaming(conversation)
        last = conversation.messages.filter(superseded=False).last()
        if last is None:
            raise ApplicationError("There is nothing to regenerate yet.", field="text")
        if last.role == Message.Role.ASSISTANT:
            last.superseded = True
            last.save(update_fields=["superseded", "updated_at"])
        answer = _answer_for(conversation)
        conversation.save(update_fields=["updated_at"])
    return Exchange(question=None, answer=answer)


def answer_request(*, workspace: Workspace, answer: Message) -> ChatRequest:
    """What the gateway gets for `answer`: the agent's system prompt and the history so far."""
    conversation = answer.conversation
    agent = conversation.agent
    prompt = render_prompt(
        agent.system_prompt, {"workspace_name": workspace.name, "agent_name": agent.name}
    )
    history = [
        LlmMessage(role=m.role, content=m.content)  # type: ignore[arg-type]
        for m in conversation.messages.filter(superseded=False, pk__lt=answer.pk).exclude(
            status=Status.ERROR
        )
        if m.content
    ]
    return ChatRequest(
        alias=agent.alias,
        messages=(LlmMessage("system", prompt.text), *history[-settings.CHAT_HISTORY_MESSAGES :]),
        metadata={"conversation": str(conversation.pk), "message": str(answer.pk)},
        prompt_name=prompt.name,
        prompt_version=prompt.version,
    )


def answer_finish(
    *,
    answer: Message,
    text: str,
    status: str,
    reply: ChatResponse | None = None,
    usage: Usage | None = None,
    error: str = "",
) -> Message:
    """Store how an answer ended: complete, stopped (its partial text) or error."""
    answer.content = text
    answer.status = status
    answer.error = error
    if reply is not None:
        answer.trace_id = uuid.UUID(reply.trace_id)
        answer.provider, answer.model, answer.offline = reply.provider, reply.model, reply.offline
        answer.cost_micros = reply.cost_micros
        usage = reply.usage
    if usage is not None:
        answer.input_tokens, answer.output_tokens = usage.input_tokens, usage.output_tokens
    answer.save()
    return answer


def conversation_title_set(*, conversation: Conversation, title: str) -> Conversation:
    title = re.sub(r"\s+", " ", title).strip().strip("\"'“”‘’.").strip()
    conversation.title = title[:80] or "New conversation"
    conversation.save(update_fields=["title"])
    return conversation


def title_request(*, conversation: Conversation) -> ChatRequest | None:
    """The `fast` call that names a conversation after its first exchange (None: named)."""
    if conversation.title:
        return None
    first = list(conversation.messages.filter(superseded=False, status=Status.COMPLETE)[:2])
    if len(first) < 2 or first[0].role != Message.Role.USER:
        return None
    prompt = render_prompt(
        "conversation.title",
        {"user_message": first[0].content[:2000], "assistant_message": first[1].content[:2000]},
    )
    return ChatRequest(
        alias=prompt.alias,
        messages=(LlmMessage("user", prompt.text),),
        max_tokens=prompt.max_tokens,
        response_format=prompt.response_format(),
        prompt_name=prompt.name,
        prompt_version=prompt.version,
    )


def feedback_set(*, message: Message, user: User, rating: int, comment: str = "") -> Message:
    """Thumbs up (+1) / down (-1) on an answer, with an optional comment; copied to the
    answer's trace as its score, for support and evals."""
    if message.role != Message.Role.ASSISTANT:
        raise ApplicationError("Only answers can be rated.", field="rating")
    if message.conversation.user_id != user.pk:
        raise ApplicationError(
            "Only the conversation's owner can rate its answers.", field="rating"
        )
    if rating not in (1, -1):
        raise ApplicationError("Rate with thumbs up or thumbs down.", field="rating")
    comment = comment.strip()[:2000]
    message.rating, message.rating_comment = rating, comment
    message.save(update_fields=["rating", "rating_comment", "updated_at"])
    _score_trace(message, rating, comment)
    return message


def _score_trace(message: Message, rating: int, comment: str) -> None:
    """Traces are stored off the hot path (a beat task every few seconds): one rated right
    after the answer may still be queued, so store the queue first."""
    for attempt in (1, 2):
        trace_id = message.trace_id or (
            LlmCallLog.objects.filter(request_id=message.request_id)
            .values_list("trace_id", flat=True)
            .first()
        )
        if trace_id is not None and trace_score_set(
            trace_id=trace_id, score=rating, comment=comment
        ):
            return
        if attempt == 1:
            call_records_flush()
