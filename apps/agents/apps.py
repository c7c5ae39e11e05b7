"""Agents. Installed in TENANT_APPS (one schema per workspace).

Agents, conversations and messages, the tool registry: the workspace's own content, isolated
by construction. (The agent_run job table that workers scan across workspaces will be a shared
app when long runs land: docs/architecture.md, "Tenancy".)
"""

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "apps.agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        # The approval seam and the resume hooks (docs/architecture.md, "Approvals").
        from apps.approvals.ports import resume_plug

        from .autonomy import autonomy_decide
        from .chat.resume import answer_resume_enqueue
        from .runs.services import run_resume
        from .tools.approved import action_run
        from .tools.policy import policy_plug

        policy_plug(autonomy_decide)
        resume_plug("chat", answer_resume_enqueue)
        resume_plug("self", action_run)
        resume_plug("run", run_resume)
