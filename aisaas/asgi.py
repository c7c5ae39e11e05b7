"""One ASGI app for HTTP and WebSocket, served by daphne.

HTTP under `/v1/` on the public host is the OpenAI-compatible API, answered by a plain ASGI app
(apps/api/app.py says why it skips Django's request cycle); `/mcp` on a workspace host is that
workspace's tools over MCP (apps/agents/mcp_server.py), plain ASGI too, checking keys with the
API's own check; everything else is Django.
WebSockets pass, in order: same-origin check, the JSON depth cap on every frame, workspace
resolution from the Host header, session authentication, then the URL router; consumers check
membership themselves.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aisaas.settings.local")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from aisaas.bootstrap import ensure_services  # noqa: E402
from aisaas.routing import websocket_urlpatterns  # noqa: E402
from apps.agents.mcp_server import McpEndpoint  # noqa: E402
from apps.api.app import OpenAIApi  # noqa: E402
from apps.api.principal import api_key_counted  # noqa: E402
from apps.common.channels import JsonDepthGuard, SameOriginValidator  # noqa: E402
from apps.workspaces.channels import WorkspaceScopeMiddleware  # noqa: E402

ensure_services()

application = ProtocolTypeRouter(
    {
        "http": McpEndpoint(OpenAIApi(django_asgi_app), key_check=api_key_counted),
        "websocket": SameOriginValidator(
            JsonDepthGuard(
                WorkspaceScopeMiddleware(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
            )
        ),
    }
)
