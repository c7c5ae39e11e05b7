"""Approvals. Installed in TENANT_APPS (one schema per workspace).

Autonomy policies per tool and pending agent actions awaiting a workspace approver.
"""

from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "apps.approvals"
    verbose_name = "Approvals"
