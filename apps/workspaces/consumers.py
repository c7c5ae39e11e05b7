"""The workspace socket: members receive workspace events (documents, approvals, run
progress) here — those for every member on the workspace's group, those for one person on
their user group. Its pings keep the person marked online (presence.py)."""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.common.channels import in_workspace_schema

from .models import Membership, Workspace
from .presence import presence_clear, presence_mark
from .selectors import membership_get


def workspace_group(workspace: Workspace) -> str:
    """Channel group of a workspace; starts with the schema name."""
    return schema_group(workspace.schema_name)


def schema_group(schema: str) -> str:
    """The workspace group of the workspace whose schema is `schema`."""
    return f"{schema}.workspace"


def user_group(schema: str, user_id: int) -> str:
    """One member's group in the workspace whose schema is `schema`."""
    return f"{schema}.user.{user_id}"


@in_workspace_schema
def _present(workspace: Workspace, user_id: int, here: bool) -> None:
    if here:
        presence_mark(user_id)
    else:
        presence_clear(user_id)


@in_workspace_schema
def _membership(workspace: Workspace, user: Any) -> Membership | None:
    return membership_get(workspace=workspace, user=user)


class WorkspaceConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        workspace = self.scope.get("workspace")
        user = self.scope.get("user")
        if workspace is None or user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        membership = await _membership(workspace, user)
        if membership is None:
            # Same answer as HTTP: an outsider learns nothing, not even that the workspace exists.
            await self.close(code=4404)
            return
        self.workspace, self.user_id = workspace, user.pk
        self.group = workspace_group(workspace)
        self.own_group = user_group(workspace.schema_name, user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.channel_layer.group_add(self.own_group, self.channel_name)
        await self.accept()
        await _present(workspace, user.pk, True)
        await self.send_json(
            {"type": "hello", "workspace": workspace.slug, "role": membership.role}
        )

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.channel_layer.group_discard(self.own_group, self.channel_name)
            await _present(self.workspace, self.user_id, False)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        try:
            content = json.loads(text_data or "")
        except ValueError:
            await self.send_json({"type": "error", "message": "Messages must be JSON text."})
            return
        if not isinstance(content, dict) or content.get("type") != "ping":
            await self.send_json(
                {
                    "type": "error",
                    "message": 'Unknown message; this socket accepts {"type": "ping"}.',
                }
            )
            return
        await _present(self.workspace, self.user_id, True)
        await self.send_json({"type": "pong"})

    async def workspace_event(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])
