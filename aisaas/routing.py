from django.urls import path

from apps.workspaces.consumers import WorkspaceConsumer

websocket_urlpatterns = [
    path("ws/workspace/", WorkspaceConsumer.as_asgi()),
]
