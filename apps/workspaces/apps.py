"""Workspaces. Installed in SHARED_APPS (public schema).

Users are global, and the platform must see every workspace: Workspace (the tenant) and
Domain, users, memberships and roles, invitations, API keys, AI settings and BYOK keys. Every
row that belongs to a workspace carries `workspace_id`. The bottom domain layer: it imports
only `apps.common` (docs/architecture.md, "Layers and ports").
"""

from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "apps.workspaces"
    verbose_name = "Workspaces"
