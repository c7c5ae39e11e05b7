"""The chat pages on a workspace host (members only: the middleware let them in). Sending and
streaming go over the socket (consumers.py); these render pages and take feedback."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.agents.models import Conversation
from apps.agents.selectors import access_agent_by_ref, agent_active_list
from apps.agents.services import agent_default
from apps.common.errors import ApplicationError
from apps.llm.services import alias_is_offline
from apps.workspaces.http import WorkspaceRequest

from . import services
from .rendering import cited_sources, render_answer, render_steps
from .selectors import (
    access_conversation,
    access_message,
    budget_notice,
    conversation_list,
    conversation_messages,
)


def chat_home(request: WorkspaceRequest) -> HttpResponse:
    latest = conversation_list(user=request.user, limit=1).first()
    if latest is not None:
        return redirect("chat_conversation", conversation_id=latest.pk)
    return _page(request, conversation=None)


@require_POST
def chat_new(request: WorkspaceRequest) -> HttpResponse:
    """A new conversation with the agent picked (`agent`: an id or a slug; empty: the default
    Assistant). Another workspace's or a missing agent is 404; a paused one is refused."""
    ref = request.POST.get("agent", "").strip()
    agent = access_agent_by_ref(ref=ref) if ref else agent_default()
    if not agent.is_active:
        messages.error(
            request, f"{agent.name} is paused by an admin; start a conversation with another agent."
        )
        return redirect("chat_home")
    conversation = services.conversation_create(user=request.user, agent=agent)
    return redirect("chat_conversation", conversation_id=conversation.pk)


def chat_conversation(request: WorkspaceRequest, conversation_id: int) -> HttpResponse:
    conversation = access_conversation(user=request.user, conversation_id=conversation_id)
    return _page(request, conversation=conversation)


def _page(request: WorkspaceRequest, *, conversation: Conversation | None) -> HttpResponse:
    user = request.user
    default_agent = agent_default()
    agent = conversation.agent if conversation else default_agent
    messages = [
        {
            "message": m,
            "html": render_answer(m.content, m.sources),
            "sources": cited_sources(m.sources),
            "steps_html": render_steps(m.steps, request.membership) if m.steps else "",
        }
        for m in (conversation_messages(conversation=conversation) if conversation else [])
    ]
    context = {
        "conversation": conversation,
        "conversations": conversation_list(user=user),
        "messages_": messages,
        "agent": agent,
        "offline": alias_is_offline(agent.alias),
        "budget": budget_notice(workspace=request.workspace, user=user, alias=agent.alias),
        "can_manage": request.membership.can_manage,
        "agents": agent_active_list(),
        "default_agent": default_agent,
    }
    return render(request, "agents/chat.html", context)


@require_POST
def message_feedback(request: WorkspaceRequest, message_id: int) -> HttpResponse:
    message = access_message(user=request.user, message_id=message_id)
    error = ""
    try:
        rating = int(request.POST.get("rating", "0"))
        message = services.feedback_set(
            message=message,
            user=request.user,
            rating=rating,
            comment=request.POST.get("comment", ""),
        )
    except ValueError:
        error = "Rate with thumbs up or thumbs down."
    except ApplicationError as exc:
        error = exc.message
    status = 400 if error else 200
    return render(request, "agents/_feedback.html", {"m": message, "error": error}, status=status)
