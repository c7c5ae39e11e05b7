"""Chat: conversations, messages, answers, feedback. Sync (the ORM), run inside the workspace's
schema; the answer lifecycle (answer.py) calls them from its database thread."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction

from apps.agents.loop import agent_scopes
from apps.agents.models import Agent, Conversation, Message
from apps.agents.prompting import agent_system_prompt
from apps.agents.services import agent_default
from apps.agents.tools.registry import ToolContext, ToolSpec, tools_for
from apps.common.errors import ApplicationError
from apps.llm.prompts import render_prompt
from apps.llm.services import Actor, ChatRequest, ChatResponse, Scope, Usage
from apps.llm.services import Message as LlmMessage
from apps.rag.grounding import Passage, cited, has_documents, passages_for, sources_block
from apps.traces.models import LlmCallLog
from apps.traces.rollups import trace_score_set
from apps.traces.services import call_records_flush
from apps.workspaces.models import User, Workspace
from apps.workspaces.selectors import membership_get

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
    if not conversation.agent.is_active:
        raise ApplicationError(
            f"{conversation.agent.name} is paused by an admin; start a conversation with "
            "another agent.",
            field="text",
        )
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


@dataclass(frozen=True)
class AgentSetup:
    """How the conversation's agent acts in a turn: its tools (none for the Assistant), for
    whom, its step cap and its limits as budget scopes."""

    ctx: ToolContext
    tools: list[ToolSpec[Any, Any]]
    max_steps: int
    scopes: tuple[Scope, ...]


def answer_agent(*, workspace: Workspace, answer: Message, user: User) -> AgentSetup:
    agent = answer.conversation.agent
    membership = membership_get(workspace=workspace, user=user)
    if membership is None:  # the socket checked it; a removal in between ends here
        raise ApplicationError("You are no longer a member of this workspace.", field="text")
    run_key = f"answer-{answer.pk}"
    ctx = ToolContext(
        workspace=workspace,
        agent=agent,
        user=user,
        membership=membership,
        run_key=run_key,
        via="chat",
        conversation_id=answer.conversation_id,
        resume=("chat", str(answer.pk)),  # held calls resume this answer (chat/resume.py)
    )
    return AgentSetup(
        ctx=ctx,
        tools=tools_for(list(agent.tools or []), workspace=workspace),
        max_steps=agent.max_steps if agent.tools else 1,
        scopes=agent_scopes(agent, schema=workspace.schema_name, run_key=run_key),
    )


def answer_grounded(*, workspace: Workspace, answer: Message) -> bool:
    """Whether `answer` is given passages of the workspace's documents: the default Assistant
    answers from them as soon as one document is ready (agents search with their tool)."""
    return answer.conversation.agent.is_default and has_documents(workspace)


@dataclass(frozen=True)
class AnswerRequest:
    request: ChatRequest
    passages: list[Passage]  # what the model may cite ([] when not grounded or none relevant)


def answer_request(
    *, workspace: Workspace, answer: Message, user: User | None = None, grounded: bool = False
) -> AnswerRequest:
    """What the gateway gets for `answer`: the agent's system prompt and the history so far;
    when `grounded`, the grounded prompt with the passages retrieved for the last question
    (the search is metered to `user`)."""
    conversation = answer.conversation
    agent = conversation.agent
    history = [
        LlmMessage(role=m.role, content=m.content)  # type: ignore[arg-type]
        for m in conversation.messages.filter(superseded=False, pk__lt=answer.pk).exclude(
            status=Status.ERROR
        )
        if m.content
    ]
    passages: list[Passage] = []
    question = next((m.content for m in reversed(history) if m.role == "user"), "")
    if grounded and question:
        actor = Actor("user", str(user.pk)) if user is not None else None
        passages = passages_for(workspace=workspace, question=question, user=user, actor=actor)
        prompt, system = agent_system_prompt(
            workspace=workspace,
            agent=agent,
            prompt="chat.grounded",
            sources=sources_block(passages),
        )
    else:
        prompt, system = agent_system_prompt(workspace=workspace, agent=agent)
    request = ChatRequest(
        alias=agent.alias,
        messages=(LlmMessage("system", system), *history[-settings.CHAT_HISTORY_MESSAGES :]),
        metadata={"conversation": str(conversation.pk), "message": str(answer.pk)},
        prompt_name=prompt.name,
        prompt_version=prompt.version,
    )
    return AnswerRequest(request=request, passages=passages)


def answer_finish(
    *,
    answer: Message,
    text: str,
    status: str,
    reply: ChatResponse | None = None,
    usage: Usage | None = None,
    error: str = "",
    passages: Sequence[Passage] = (),
    cost_micros: int | None = None,
    steps: Sequence[dict[str, Any]] = (),
    agent_state: dict[str, Any] | None = None,
) -> Message:
    """Store how an answer ended: complete, stopped (its partial text), error, or waiting for
    approvals (with the loop state to resume from); with the passages it was given, those it
    cites marked."""
    answer.content = text
    cited_ns = {p.n for p in cited(passages, text)}
    answer.sources = [{**p.as_dict(), "cited": p.n in cited_ns} for p in passages]
    answer.status = status
    answer.error = error
    if reply is not None:
        answer.trace_id = uuid.UUID(reply.trace_id)
        answer.provider, answer.model, answer.offline = reply.provider, reply.model, reply.offline
        answer.cost_micros = reply.cost_micros
        usage = usage or reply.usage
    if cost_micros is not None:  # an agent's answer: the sum of its model calls
        answer.cost_micros = cost_micros
    answer.steps = list(steps)
    answer.agent_state = agent_state if status == Status.WAITING else None
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
