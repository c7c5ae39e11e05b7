"""Approvals: autonomy levels and the actions that wait for a person. Installed in TENANT_APPS.

Sits between `rag` and `agents` in the layers (docs/architecture.md, "Layers and ports"): it
knows agents by id and name only and never imports them. Agents consult the policy
(`policy.level_for`), hold calls as pending actions (`services.action_hold`) and plug in what
happens once every action of an answer or run is decided (`ports.resume_plug`).
"""

from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "apps.approvals"
    verbose_name = "Approvals"
