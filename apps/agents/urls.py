"""The Agents, Tasks and tool-audit pages on a workspace host (members; managing: owners and
admins)."""

from django.urls import path

from . import views

urlpatterns = [
    path("agents/", views.agents_page, name="agents"),
    path("agents/new/", views.agent_new, name="agent_new"),
    path("agents/web-access/", views.http_domains, name="agents_http_domains"),
    path("agents/audit/", views.audit_page, name="agents_audit"),
    path("agents/audit/<int:audit_id>/undo/", views.tool_undo_view, name="tool_undo"),
    path("agents/autonomy/", views.autonomy_page, name="agents_autonomy"),
    path("agents/autonomy/rule/", views.autonomy_rule, name="agents_autonomy_rule"),
    path("agents/autonomy/windows/", views.autonomy_windows, name="agents_autonomy_windows"),
    path("agents/mcp-servers/", views.mcp_server_add, name="mcp_server_add"),
    path(
        "agents/mcp-servers/<int:server_id>/refresh/",
        views.mcp_server_refresh,
        name="mcp_server_refresh",
    ),
    path(
        "agents/mcp-servers/<int:server_id>/delete/",
        views.mcp_server_delete,
        name="mcp_server_delete",
    ),
    path("agents/<int:agent_id>/edit/", views.agent_edit, name="agent_edit"),
    path("agents/<int:agent_id>/status/", views.agent_status, name="agent_status"),
    path("agents/<int:agent_id>/delete/", views.agent_delete, name="agent_delete"),
    path("runs/", views.runs_page, name="runs"),
    path("runs/new/", views.run_new, name="run_new"),
    path("runs/<str:public_id>/", views.run_detail, name="run_detail"),
    path("runs/<str:public_id>/cancel/", views.run_cancel_view, name="run_cancel"),
    path("tasks/", views.tasks_page, name="tasks"),
    path("tasks/add/", views.task_add, name="task_add"),
    path("tasks/<int:task_id>/status/", views.task_status, name="task_status"),
    path("tasks/<int:task_id>/delete/", views.task_delete, name="task_delete"),
]
