"""The workspace socket: members receive workspace events (approvals, run progress) here."""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.common.channels import in_workspace_schema

from .models import Membership, Workspace
from .selectors import membership_get


def workspace_group(workspace: Workspace) -> str:
    """Channel group of a workspace; starts with the schema name."""
    return schema_group(workspace.schema_name)


def schema_group(schema: str) -> str:
    """The workspace group of the workspace whose schema is `schema`."""
    return f"{schema}.workspace"


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
        self.group = workspace_group(workspace)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json(
            {"type": "hello", "workspace": workspace.slug, "role": membership.role}
        )

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

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
        await self.send_json({"type": "pong"})

    async def workspace_event(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])
