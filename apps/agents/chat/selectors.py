"""Reads for chat, and the budget notice of its page. `access_*` answer 404 for missing and foreign alike (another user's
conversation, or an id from another workspace's schema)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from apps.agents.models import Conversation, Message
from apps.billing.ledger import credits
from apps.billing.plans import low_credit_micros
from apps.llm.services import CreditUsage, GatewayError, llm_budget_usage, llm_credit_usage
from apps.workspaces.models import User, Workspace


def conversation_list(*, user: User, limit: int = 50) -> QuerySet[Conversation]:
    return Conversation.objects.filter(user_id=user.pk).order_by("-updated_at", "-pk")[:limit]


def access_conversation(*, user: User, conversation_id: object) -> Conversation:
    try:
        pk = int(str(conversation_id))
    except ValueError:
        raise Http404("No such conversation.") from None
    found = Conversation.objects.select_related("agent").filter(pk=pk, user_id=user.pk).first()
    if found is None:
        raise Http404("No such conversation.")
    return found


def access_message(*, user: User, message_id: object) -> Message:
    try:
        pk = int(str(message_id))
    except ValueError:
        raise Http404("No such message.") from None
    found = (
        Message.objects.select_related("conversation")
        .filter(pk=pk, conversation__user_id=user.pk)
        .first()
    )
    if found is None:
        raise Http404("No such message.")
    return found


def conversation_messages(*, conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.all()


WARN_AT = 0.8  # a daily scope this full shows a banner


def budget_notice(*, workspace: Workspace, user: User, alias: str) -> dict[str, Any]:
    """What the chat page says about money and limits, worst first: the paywall (the credit
    left is below what the smallest call on `alias` reserves: top up or upgrade), the panel
    (100 % of a daily scope: no more calls today), the low-credit banner (below the plan's
    share, BILLING_LOW_CREDIT_PERCENT), the banner at ≥ 80 % of a daily scope, or ok."""
    usage = llm_budget_usage(workspace=workspace, user=user)
    try:
        credit: CreditUsage | None = llm_credit_usage(workspace=workspace, alias=alias)
    except GatewayError:  # an alias no provider serves: the socket says so when used
        credit = None
    if credit is not None and credit.exhausted:
        return {"level": "credits", "balance_micros": credit.balance_micros}
    worst = max(usage, key=lambda u: u.fraction, default=None)
    blocked = worst is not None and worst.used >= worst.limit
    low = low_credit_micros(workspace=workspace)
    if not blocked and credit is not None and credit.available_micros < low:
        return {"level": "low_credits", "credits_left": credits(credit.available_micros)}
    if worst is None or worst.fraction < WARN_AT:
        return {"level": "ok"}
    return {
        "level": "blocked" if blocked else "warn",
        "scope": worst.name.replace("_", " "),
        "percent": min(100, round(worst.fraction * 100)),
        "resets_at": worst.resets_at,
    }
