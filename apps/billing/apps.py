"""Billing. Installed in SHARED_APPS (public schema).

The credit ledger and balances, plans, subscriptions and Stripe objects: finance and Stripe
webhooks work across workspaces. Outcomes live here too (not in a tenant schema as DESIGN §3
suggests): the finalise task and finance read them across workspaces, like the ledger.
"""

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "apps.billing"
    verbose_name = "Billing"
