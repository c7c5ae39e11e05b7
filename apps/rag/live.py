"""Document status, live: every change is pushed to the workspace socket of its members
(`workspace.event` on the workspace's group), after the commit, so a page never shows a state
the database does not hold. Best effort: a channel layer that is down never fails indexing."""

from __future__ import annotations

from typing import Any

import structlog
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from apps.common.tenancy import current_schema
from apps.workspaces.consumers import schema_group

from .models import EmbeddingIndex

log = structlog.get_logger(__name__)


def document_changed(document_id: int, **fields: Any) -> None:
    """After the commit, send {"type": "document", "id", <fields>} to the workspace's members."""
    _send({"type": "document", "id": document_id, **fields}, document_id=document_id)


def embedding_index_changed(index: EmbeddingIndex) -> None:
    """After the commit, send the embedding switch's state and progress to the members:
    {"type": "embedding_index", "status", "model", "target", "done", "total", "error"}."""
    payload = {
        "type": "embedding_index",
        "status": index.status,
        "model": index.model,
        "target": index.target_model,
        "done": index.done,
        "total": index.total,
        "error": index.error,
    }
    _send(payload, document_id=None)


def _send(payload: dict[str, Any], *, document_id: int | None) -> None:
    group = schema_group(current_schema())

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(group, {"type": "workspace.event", "payload": payload})
        except Exception as exc:  # the page catches up on its next load
            log.warning("rag.live_send_failed", error=str(exc), document_id=document_id)

    transaction.on_commit(send)
