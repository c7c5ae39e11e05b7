"""Billing. Installed in SHARED_APPS (public schema).

The credit ledger and balances, plans, subscriptions and Stripe objects: finance and Stripe
webhooks work across workspaces. Outcomes live here too (not in a tenant schema): the finalise
task and finance read them across workspaces, like the ledger.

At ready() billing plugs into the layers below it: the gateway's account and debit ports, and
workspace creation (the month's plan grant). See docs/architecture.md, "Layers and ports".
"""

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "apps.billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from apps.llm.ports import ports
        from apps.workspaces.ports import provisioner_register

        from .account import LedgerAccount, workspace_plan_grant
        from .debit_queue import LedgerDebit

        ports.plug(account=LedgerAccount(), debit=LedgerDebit)
        provisioner_register("billing.plan_grant", workspace_plan_grant)
