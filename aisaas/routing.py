from django.urls import path

from apps.agents.chat.consumers import ChatConsumer
from apps.workspaces.consumers import WorkspaceConsumer

websocket_urlpatterns = [
    path("ws/workspace/", WorkspaceConsumer.as_asgi()),
    path("ws/chat/", ChatConsumer.as_asgi()),
]
