"""Agents: writes. The workspace's default agent is the Assistant that chat answers with."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from .models import Agent


def agent_default() -> Agent:
    """The workspace's default agent, created on first use."""
    agent = Agent.objects.filter(is_default=True).first()
    if agent is not None:
        return agent
    with transaction.atomic():
        agent, _ = Agent.objects.get_or_create(
            is_default=True, defaults={"name": "Assistant", "alias": settings.CHAT_DEFAULT_ALIAS}
        )
    return agent
