"""Members' pages hear of every document change over the workspace socket's group, after the
commit — and another workspace's members hear nothing."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django_tenants.utils import schema_context

from apps.rag.services import document_add
from apps.workspaces.consumers import workspace_group
from apps.workspaces.models import User, Workspace

pytestmark = pytest.mark.django_db


def _listen(workspace: Workspace) -> tuple[Any, str]:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(workspace_group(workspace), channel)
    return layer, channel


def test_an_added_document_is_announced_to_its_workspace_only(
    acme: Workspace, globex: Workspace, owner: User, django_capture_on_commit_callbacks: Any
) -> None:
    layer, acme_channel = _listen(acme)
    _, globex_channel = _listen(globex)

    with (
        schema_context(acme.schema_name),
        django_capture_on_commit_callbacks(execute=True),
    ):
        document = document_add(user=owner, data=b"Some notes.", filename="notes.txt")

    message = async_to_sync(layer.receive)(acme_channel)
    assert message["type"] == "workspace.event"
    assert message["payload"] == {
        "type": "document",
        "id": document.pk,
        "status": "queued",
        "title": "notes.txt",
    }

    async def nothing_for(channel: str) -> bool:
        import asyncio

        try:
            await asyncio.wait_for(layer.receive(channel), timeout=0.5)
        except TimeoutError:
            return True
        return False

    assert async_to_sync(nothing_for)(globex_channel)
