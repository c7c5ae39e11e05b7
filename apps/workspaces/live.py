"""Pushing events to one person's workspace sockets (their user group), after the commit so a
page never shows a state the database does not hold. Best effort: a channel layer that is
down never fails the work; pages catch up on their next load."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from apps.common.tenancy import current_schema

from .consumers import user_group

log = structlog.get_logger(__name__)


def users_event(user_ids: Iterable[int], payload: dict[str, Any]) -> None:
    """After the commit, send `payload` to each user's workspace sockets (current schema)."""
    schema = current_schema()
    groups = [user_group(schema, uid) for uid in set(user_ids)]

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        for group in groups:
            try:
                async_to_sync(layer.group_send)(
                    group, {"type": "workspace.event", "payload": payload}
                )
            except Exception as exc:
                log.warning("workspaces.live_send_failed", error=str(exc), type=payload.get("type"))

    transaction.on_commit(send)
