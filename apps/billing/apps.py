"""Billing. Installed in SHARED_APPS (public schema).

The credit ledger and balances, plans, subscriptions and Stripe objects: finance and Stripe
webhooks work across workspaces. Outcomes (workspace content with a dispute flow) will live in a
tenant app of their own when billing lands.
"""

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "apps.billing"
    verbose_name = "Billing"
