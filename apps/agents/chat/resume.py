"""A waiting answer resumes once every action it waits for is decided (docs/architecture.md,
"Approvals"). Nothing is held while it waits: the decision's commit queues `resume_answer`
(a Celery task), which takes the answer (only a waiting one, once), calls the held tools again
— approved ones run, exactly once; refused ones tell the model why — and continues the loop
from the stored messages. The frames go to the conversation owner's chat sockets (their user
group), where the page picks up the answer it shows as waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import structlog
from channels.layers import get_channel_layer
from django.db import transaction

from apps.agents.models import Message
from apps.common.channels import in_workspace_schema
from apps.common.errors import ApplicationError
from apps.llm.services import ChatRequest, Usage
from apps.workspaces.models import User, Workspace

from ..loop import Resume, calls_load, messages_load
from . import services
from .answer import Ending, Frame, Turn, finish, stream, turn_scope

log = structlog.get_logger(__name__)


def chat_group(schema: str, user_id: int) -> str:
    """The chat sockets of one person in one workspace."""
    return f"{schema}.chat.{user_id}"


def answer_resume_enqueue(ref: str) -> None:
    """The approvals resume hook for chat (called after the deciding commit)."""
    from apps.agents.tasks import resume_answer

    resume_answer.delay(int(ref))


@in_workspace_schema
def _take(workspace: Workspace, answer_id: int) -> tuple[Turn, Resume, ChatRequest, User] | None:
    """The waiting answer, now streaming again (None: not waiting — resumed already)."""
    with transaction.atomic():
        answer = (
            Message.objects.select_for_update()
            .select_related("conversation__agent")
            .filter(pk=answer_id, status=Message.Status.WAITING)
            .first()
        )
        if answer is None:
            return None
        answer.status = Message.Status.STREAMING
        answer.save(update_fields=["status", "updated_at"])
    user = User.objects.get(pk=answer.conversation.user_id)
    state: dict[str, Any] = answer.agent_state or {}
    try:
        agent = services.answer_agent(workspace=workspace, answer=answer, user=user)
    except ApplicationError as exc:
        services.answer_finish(
            answer=answer, text=answer.content, status=Message.Status.ERROR, error=exc.message
        )
        return None
    turn = Turn(
        question=None,
        question_html="",
        answer=answer,
        scope=turn_scope(workspace, user, answer, agent),
        grounded=False,
        agent=agent,
    )
    resume = Resume(
        step=int(state["step"]),
        messages=messages_load(state["messages"]),
        held=tuple(calls_load(call) for call in state["held"]),
    )
    prompt_name, prompt_version = state.get("prompt") or (None, None)
    request = ChatRequest(
        alias=answer.conversation.agent.alias,
        messages=resume.messages,
        metadata={"conversation": str(answer.conversation_id), "message": str(answer.pk)},
        prompt_name=prompt_name,
        prompt_version=prompt_version,
    )
    return turn, resume, request, user


async def answer_resume(*, workspace: Workspace, answer_id: int) -> AsyncIterator[Frame]:
    """The frames of a resumed answer: `resumed`, the held calls' `tool_call`/`tool_result`,
    then as a turn (tokens, more tools…), `done` — or nothing if it is not waiting."""
    taken = await _take(workspace, answer_id)
    if taken is None:
        return
    turn, resume, request, user = taken
    answer = turn.answer
    yield {"type": "resumed", "message_id": answer.pk, "conversation": answer.conversation_id}
    text = [answer.content]
    ending = Ending(
        steps=list(answer.steps),
        cost_micros=answer.cost_micros,
        summed=True,
        usage=Usage(input_tokens=answer.input_tokens, output_tokens=answer.output_tokens),
    )
    try:
        async for out in stream(turn, request, text, ending, asyncio.Event(), resume=resume):
            yield out
    finally:
        done, _ = await asyncio.shield(finish(workspace, user, answer, "".join(text), ending))
    for out in ending.frames:
        yield out
    yield done


async def answer_resume_publish(workspace: Workspace, answer_id: int) -> int:
    """Run the resumed answer, sending each frame to its owner's chat sockets; the count."""
    layer = get_channel_layer()
    group = ""
    sent = 0
    async for frame in answer_resume(workspace=workspace, answer_id=answer_id):
        if frame["type"] == "resumed":
            group = chat_group(workspace.schema_name, await _owner(workspace, answer_id))
        if layer is None or not group:
            continue
        try:
            await layer.group_send(
                group, {"type": "chat.frame", "frame": {**frame, "resumed": answer_id}}
            )
            sent += 1
        except Exception as exc:  # the page shows the stored answer on its next load
            log.warning("chat.resume_send_failed", error=str(exc))
    return sent


@in_workspace_schema
def _owner(workspace: Workspace, answer_id: int) -> int:
    return int(Message.objects.get(pk=answer_id).conversation.user_id)
