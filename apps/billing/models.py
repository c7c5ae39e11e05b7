"""Money (docs/architecture.md, "Money"): plans, the append-only credit ledger with a running
balance per workspace, Stripe's objects as thin rows of our own, usage pushed to Stripe, and
outcome billing.

Every amount is an integer number of micro-dollars (1 USD = 1_000_000). Credits are a display
unit (settings.CREDIT_MICROS, default 1 credit = $0.001 = 1000 micros).
Public schema: finance and Stripe webhooks work across workspaces; every row names its workspace.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django.utils import timezone

from apps.common.models import BaseModel


class Plan(BaseModel):
    """A plan as data: what it grants each month, its limits, its price, its retention."""

    code = models.SlugField(max_length=32, unique=True)  # free / pro / enterprise
    name = models.CharField(max_length=64)
    monthly_credit_micros = models.BigIntegerField(default=0)
    day_tokens = models.BigIntegerField()
    user_day_requests = models.IntegerField()
    price_cents = models.IntegerField(default=0)  # per month, USD
    stripe_price_id = models.CharField(max_length=255, blank=True)
    # Retention (traces): raw prompts/responses, then a masked copy; call metadata is kept.
    raw_retention_days = models.PositiveIntegerField(default=7)
    masked_retention_days = models.PositiveIntegerField(default=30)
    self_serve = models.BooleanField(default=True)  # enterprise: contact sales
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering: ClassVar[list[str]] = ["sort_order", "code"]

    def __str__(self) -> str:
        return self.name


class CreditBalance(models.Model):
    """The running balance of one workspace: updated in the same transaction as the ledger row
    that changes it, under this row's lock. `last_entry_id` is the newest entry it includes."""

    workspace = models.OneToOneField(
        "workspaces.Workspace", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    balance_micros = models.BigIntegerField(default=0)
    last_entry_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "billing_credit_balance"

    def __str__(self) -> str:
        return f"{self.workspace_id}: {self.balance_micros} µ$"


class LedgerReason:
    """`reason` values; `feature.<name>` is built from the call's feature."""

    PLAN_GRANT = "plan_grant"
    TOPUP = "topup"
    AGENT_RUN = "agent.run"
    OUTCOME = "outcome"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    FEATURE_PREFIX = "feature."


class LedgerEntry(models.Model):
    """One change of a workspace's credit. Append-only: corrections are new rows."""

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    delta_micros = models.BigIntegerField()
    balance_after_micros = models.BigIntegerField()
    reason = models.CharField(max_length=100)
    idempotency_key = models.CharField(max_length=200, unique=True)
    # Money received for this entry (a top-up's or a plan invoice's amount): revenue for finance.
    revenue_micros = models.BigIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "billing_ledger_entry"
        verbose_name_plural = "ledger entries"
        ordering: ClassVar[list[str]] = ["-id"]
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=["workspace", "created_at"], name="ledger_ws_time"),
            models.Index(fields=["workspace", "reason", "created_at"], name="ledger_ws_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.reason} {self.delta_micros:+d} µ$"


class BillingCustomer(BaseModel):
    """The Stripe customer of a workspace."""

    workspace = models.OneToOneField(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    stripe_customer_id = models.CharField(max_length=255, unique=True)

    def __str__(self) -> str:
        return self.stripe_customer_id


class Subscription(BaseModel):
    """A workspace's Stripe subscription, as the newest event we applied says it is."""

    workspace = models.OneToOneField(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    stripe_subscription_id = models.CharField(max_length=255, unique=True)
    plan_code = models.CharField(max_length=32)
    status = models.CharField(max_length=32)  # Stripe's: active, past_due, canceled, …
    current_period_end = models.DateTimeField(null=True, blank=True)
    # Cancelled by the customer (the billing portal) to end at the period's end: still paid for
    # until `cancel_at`, then Stripe deletes it and the workspace returns to free.
    cancel_at_period_end = models.BooleanField(default=False)
    cancel_at = models.DateTimeField(null=True, blank=True)
    # `created` of the newest Stripe event applied: an older event arriving late changes nothing.
    event_created = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.plan_code} {self.status}"


class CheckoutKind(models.TextChoices):
    SUBSCRIPTION = "subscription", "Subscription"
    TOPUP = "topup", "Top-up"


class CheckoutSession(BaseModel):
    """A Checkout we started: what it is for is ours, not the client's or the webhook's say."""

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    stripe_session_id = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=16, choices=CheckoutKind.choices)
    plan_code = models.CharField(max_length=32, blank=True)
    amount_micros = models.BigIntegerField(default=0)  # top-ups: the credit bought (= price paid)
    created_by_id = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, default="open")  # open / complete / expired
    # Set when a paid Checkout completes: a charge.refunded event names this, not the session.
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.kind} {self.stripe_session_id}"


class StripeEvent(models.Model):
    """Every webhook event received, once (deduplicated by Stripe's event id)."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    created = models.BigIntegerField()  # Stripe's timestamp of the event
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True)  # applied / ignored: why

    class Meta:
        db_table = "billing_stripe_event"
        ordering: ClassVar[list[str]] = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class UsageReport(models.Model):
    """One day of a workspace's usage pushed to Stripe as a meter event. `identifier` is stable
    (workspace + day), so a retried push is deduplicated by Stripe and counted once."""

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateField()
    identifier = models.CharField(max_length=200, unique=True)
    value = models.BigIntegerField()  # credits consumed that day
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        db_table = "billing_usage_report"
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=["workspace", "day"], name="usage_report_ws_day")
        ]

    def __str__(self) -> str:
        return self.identifier


class OutcomeStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DISPUTED = "disputed", "Disputed"
    CREDITED = "credited", "Credited"  # the dispute was upheld: nothing billed
    FINAL = "final", "Final"  # the window passed: billed


class Outcome(BaseModel):
    """A billable result ("ticket resolved"): pending for a dispute window, then billed.

    Kept in the public schema (not a tenant one, as first planned): the finalise task and
    finance read outcomes across workspaces, like the ledger they end up in."""

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=100)
    price_micros = models.BigIntegerField()
    external_id = models.CharField(max_length=200)  # the caller's id: one outcome per id
    trace_id = models.UUIDField(null=True, blank=True)
    run_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=OutcomeStatus.choices, default=OutcomeStatus.PENDING
    )
    window_ends_at = models.DateTimeField()
    disputed_at = models.DateTimeField(null=True, blank=True)
    disputed_by_id = models.BigIntegerField(null=True, blank=True)
    dispute_reason = models.TextField(blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    ledger_entry_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=["workspace", "external_id"], name="outcome_ws_ext")
        ]
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=["status", "window_ends_at"], name="outcome_due"),
            # The billing page's and the API's list: a workspace's newest first, paged by id.
            models.Index(fields=["workspace", "-created_at", "-id"], name="outcome_ws_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.status}"
