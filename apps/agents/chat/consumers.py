"""The chat socket (`/ws/chat/` on a workspace host): the browser sends messages, stop and
regenerate; the answer streams back as typed frames.

In:  {"type": "send", "conversation": id, "text": "…"} · {"type": "stop"} ·
     {"type": "regenerate", "conversation": id}
Out: what `answer_stream` yields (answer.py lists the frames), and `error` for a bad frame;
     frames of answers resumed after an approval (resume.py), marked `"resumed": <answer id>`.

The consumer only routes: it parses frames and forwards the frames of one answer at a time.
Stop, or a closed tab, stops the answer (answer.py says what is stored). Bad frames get an
`error` frame; the socket stays usable.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import structlog
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.common.channels import in_workspace_schema
from apps.workspaces.models import User, Workspace
from apps.workspaces.selectors import membership_get

from .answer import Frame, answer_stream
from .resume import chat_group

log = structlog.get_logger(__name__)

BUSY = "An answer is still being written: wait for it or press Stop, then send again."


@in_workspace_schema
def _is_member(workspace: Workspace, user: User) -> bool:
    return membership_get(workspace=workspace, user=user) is not None


class ChatConsumer(AsyncJsonWebsocketConsumer):
    workspace: Workspace
    user: User

    async def connect(self) -> None:
        workspace, user = self.scope.get("workspace"), self.scope.get("user")
        if workspace is None or user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        if not await _is_member(workspace, user):
            await self.close(code=4404)  # an outsider learns nothing
            return
        self.workspace, self.user = workspace, user
        self.stop: asyncio.Event | None = None  # set: the answer being written stops
        self.turns: set[asyncio.Task[None]] = set()  # answers, and titles after their `done`
        # Answers resumed after an approval stream from a worker to this person's group.
        self.group = chat_group(workspace.schema_name, user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        # A closed tab or a lost socket stops the answer, like the stop button; its ending
        # and the conversation's title are still stored.
        stop: asyncio.Event | None = getattr(self, "stop", None)  # None: refused at connect
        if stop is not None:
            stop.set()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def chat_frame(self, event: dict[str, Any]) -> None:
        """A frame of an answer resumed by a worker (chat/resume.py)."""
        await self._send(event["frame"])

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        try:
            frame = json.loads(text_data or "")
        except ValueError:
            frame = None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self._error('Send JSON like {"type": "send", "conversation": 1, "text": "…"}.')
            return
        kind = frame["type"]
        if kind == "stop":
            if self.stop is not None:
                self.stop.set()
        elif kind in ("send", "regenerate"):
            await self._start(kind, frame)
        else:
            await self._error(f"Unknown message type “{kind[:40]}”; use send, stop or regenerate.")

    async def _error(self, message: str) -> None:
        await self.send_json({"type": "error", "message": message, "retryable": False})

    async def _start(self, kind: str, frame: dict[str, Any]) -> None:
        if self.stop is not None:
            await self._error(BUSY)
            return
        stop = self.stop = asyncio.Event()
        frames = answer_stream(
            workspace=self.workspace, user=self.user, kind=kind, frame=frame, stop=stop
        )
        task = asyncio.ensure_future(self._forward(frames, stop))
        self.turns.add(task)
        task.add_done_callback(self.turns.discard)

    async def _forward(self, frames: AsyncIterator[Frame], stop: asyncio.Event) -> None:
        async for frame in frames:
            if frame["type"] == "done" and self.stop is stop:
                # The turn is over for the user once its answer is stored: the next one may
                # start while this one still names the conversation.
                self.stop = None
            await self._send(frame)
        if self.stop is stop:  # refused before it started
            self.stop = None

    async def _send(self, frame: Frame) -> None:
        try:
            await self.send_json(frame)
        except Exception:  # the socket is gone (a closed tab): the answer is stored anyway
            log.info("chat.frame_not_delivered", type=frame["type"])
