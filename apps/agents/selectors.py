"""Reads for chat. `access_*` answer 404 for missing and foreign alike (another user's
conversation, or an id from another workspace's schema)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from apps.workspaces.models import User

from .models import Conversation, Message


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
