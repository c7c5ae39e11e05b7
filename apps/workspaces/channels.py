"""The workspace of a WebSocket: resolved from the Host header before any consumer runs."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django_tenants.utils import get_public_schema_name, schema_context

from apps.common.channels import ASGIApp, Scope, deny, header, hostname

from .models import Domain, Workspace


def _workspace_for_host_sync(host: str) -> Workspace | None:
    with schema_context(get_public_schema_name()):
        domain = Domain.objects.select_related("tenant").filter(domain=host).first()
        return domain.tenant if domain else None


_workspace_for_host = database_sync_to_async(_workspace_for_host_sync, thread_sensitive=False)


class WorkspaceScopeMiddleware:
    """Put the workspace named by the Host header in `scope["workspace"]` (None on public hosts);
    an unknown host is refused."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        host = hostname(header(scope, b"host"))
        workspace = None
        if host not in settings.PUBLIC_HOSTS:
            workspace = await _workspace_for_host(host)
            if workspace is None:
                await receive()
                await deny(send)
                return
        await self.app({**scope, "workspace": workspace}, receive, send)
