"""Workspaces. Installed in SHARED_APPS (public schema).

Users are global, and the platform must see every workspace: Workspace (the tenant) and
Domain, users, memberships and roles, invitations, later API keys, AI settings and the audit log.
Every row that belongs to a workspace carries `workspace_id`.
"""

from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "apps.workspaces"
    verbose_name = "Workspaces"
