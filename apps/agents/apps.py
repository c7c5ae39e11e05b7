"""Agents. Installed in TENANT_APPS (one schema per workspace).

Agents, conversations and messages, the tool registry: the workspace's own content, isolated
by construction. (The agent_run job table that workers scan across workspaces will be a shared
app when long runs land: docs/architecture.md, "Tenancy".)
"""

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "apps.agents"
    verbose_name = "Agents"
