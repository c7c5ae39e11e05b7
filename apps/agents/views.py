"""The chat pages on a workspace host (members only: the middleware let them in). Sending and
streaming go over the socket (consumers.py); these render pages and take feedback."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.billing.ledger import credits
from apps.billing.plans import low_credit_micros
from apps.common.errors import ApplicationError
from apps.llm.config import platform_providers, routing_table
from apps.llm.core.budget import ScopeUsage
from apps.llm.core.errors import GatewayError
from apps.llm.services import CreditUsage, llm_budget_usage, llm_credit_usage
from apps.workspaces.models import User, Workspace

from . import services
from .models import Conversation
from .rendering import render_markdown
from .selectors import access_conversation, access_message, conversation_list, conversation_messages

WARN_AT = 0.8


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _workspace(request: HttpRequest) -> Workspace:
    return request.workspace  # type: ignore[attr-defined]


def _budget(
    usage: list[ScopeUsage], credit: CreditUsage | None, *, low_credit_micros: int = 0
) -> dict[str, Any]:
    """The paywall (the credit left is below what the smallest call reserves: top up or
    upgrade), the panel (100 % of a daily scope: no more calls today), the low-credit banner
    (below `low_credit_micros`), or the banner at ≥ 80 % of a daily scope."""
    if credit is not None and credit.exhausted:
        return {"level": "credits", "balance_micros": credit.balance_micros}
    worst = max(usage, key=lambda u: u.fraction, default=None)
    blocked = worst is not None and worst.used >= worst.limit
    if not blocked and credit is not None and credit.available_micros < low_credit_micros:
        return {"level": "low_credits", "credits_left": credits(credit.available_micros)}
    if worst is None or worst.fraction < WARN_AT:
        return {"level": "ok"}
    return {
        "level": "blocked" if blocked else "warn",
        "scope": worst.name.replace("_", " "),
        "percent": min(100, round(worst.fraction * 100)),
        "resets_at": worst.resets_at,
    }


def _offline(alias: str) -> bool:
    """Whether the offline local model will answer this alias (no provider key configured)."""
    try:
        routes = routing_table().resolve(alias, configured=frozenset(platform_providers()))
    except Exception:
        return False
    return routes.primary.provider == "local"


def chat_home(request: HttpRequest) -> HttpResponse:
    latest = conversation_list(user=_user(request), limit=1).first()
    if latest is not None:
        return redirect("chat_conversation", conversation_id=latest.pk)
    return _page(request, conversation=None)


@require_POST
def chat_new(request: HttpRequest) -> HttpResponse:
    conversation = services.conversation_create(user=_user(request))
    return redirect("chat_conversation", conversation_id=conversation.pk)


def chat_conversation(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = access_conversation(user=_user(request), conversation_id=conversation_id)
    return _page(request, conversation=conversation)


def _credit(workspace: Workspace, alias: str) -> CreditUsage | None:
    try:
        return llm_credit_usage(workspace=workspace, alias=alias)
    except GatewayError:  # an alias no provider serves: the socket says so when used
        return None


def _page(request: HttpRequest, *, conversation: Conversation | None) -> HttpResponse:
    user = _user(request)
    workspace = _workspace(request)
    agent = conversation.agent if conversation else services.agent_default()
    messages = [
        {"message": m, "html": render_markdown(m.content)}
        for m in (conversation_messages(conversation=conversation) if conversation else [])
    ]
    context = {
        "conversation": conversation,
        "conversations": conversation_list(user=user),
        "messages_": messages,
        "agent": agent,
        "offline": _offline(agent.alias),
        "budget": _budget(
            llm_budget_usage(workspace=workspace, user=user),
            _credit(workspace, agent.alias),
            low_credit_micros=low_credit_micros(workspace=workspace),
        ),
        "can_manage": bool(request.membership and request.membership.can_manage),  # type: ignore[attr-defined]
    }
    return render(request, "agents/chat.html", context)


@require_POST
def message_feedback(request: HttpRequest, message_id: int) -> HttpResponse:
    message = access_message(user=_user(request), message_id=message_id)
    error = ""
    try:
        rating = int(request.POST.get("rating", "0"))
        message = services.feedback_set(
            message=message,
            user=_user(request),
            rating=rating,
            comment=request.POST.get("comment", ""),
        )
    except ValueError:
        error = "Rate with thumbs up or thumbs down."
    except ApplicationError as exc:
        error = exc.message
    status = 400 if error else 200
    return render(request, "agents/_feedback.html", {"m": message, "error": error}, status=status)
