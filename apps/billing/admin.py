"""Billing in Django admin, for platform staff (the `finance` group and superusers).

Money is written by services only: the ledger is append-only (no add, change or delete here,
for anyone), balances move with it, Stripe's rows are written by the webhook. Staff resolve
outcome disputes through actions that call the outcome service. Plans are edited by superusers.
The finance overview and the ledger CSV export are in admin_views.py.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.common.admin import ReadOnlyAdmin
from apps.common.errors import ApplicationError
from apps.workspaces.models import User

from .ledger import credits
from .models import (
    BillingCustomer,
    CheckoutSession,
    CreditBalance,
    LedgerEntry,
    LedgerReason,
    Outcome,
    OutcomeStatus,
    Plan,
    StripeEvent,
    Subscription,
    UsageReport,
)
from .outcomes import outcome_resolve_dispute


@admin.register(CreditBalance)
class CreditBalanceAdmin(ReadOnlyAdmin):
    list_display = ("workspace", "balance_credits", "balance_micros", "last_entry_id", "updated_at")
    list_select_related = ("workspace",)
    search_fields = ("workspace__slug", "workspace__name")
    ordering = ("workspace__slug",)

    @admin.display(description="Credits", ordering="balance_micros")
    def balance_credits(self, row: CreditBalance) -> Decimal:
        return credits(row.balance_micros)


class ReasonFilter(admin.SimpleListFilter):
    """The ledger's reasons as a fixed list (no DISTINCT scan of the whole ledger per page);
    "feature.*" matches every model-call feature, any exact reason works in the URL."""

    title = "reason"
    parameter_name = "reason"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        fixed = (
            LedgerReason.PLAN_GRANT,
            LedgerReason.TOPUP,
            LedgerReason.ADJUSTMENT,
            LedgerReason.REFUND,
            LedgerReason.OUTCOME,
            LedgerReason.AGENT_RUN,
        )
        return [(reason, reason) for reason in fixed] + [
            (LedgerReason.FEATURE_PREFIX, "feature.* (model calls)")
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        if value.endswith("."):
            return queryset.filter(reason__startswith=value)
        return queryset.filter(reason=value)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    """Append-only: corrections are new entries (`manage.py credits grant`), never edits."""

    change_list_template = "admin/billing/ledgerentry/change_list.html"
    list_display = (
        "id",
        "created_at",
        "workspace",
        "reason",
        "delta_credits",
        "balance_after_credits",
        "revenue_micros",
        "idempotency_key",
    )
    list_select_related = ("workspace",)
    list_filter = (ReasonFilter, ("created_at", admin.DateFieldListFilter))
    search_fields = ("workspace__slug", "idempotency_key")
    date_hierarchy = "created_at"
    show_full_result_count = False  # no COUNT(*) over the whole ledger on every page

    @admin.display(description="Credits", ordering="delta_micros")
    def delta_credits(self, row: LedgerEntry) -> str:
        return f"{credits(row.delta_micros):+,}"

    @admin.display(description="Balance after (credits)")
    def balance_after_credits(self, row: LedgerEntry) -> str:
        return f"{credits(row.balance_after_micros):,}"


@admin.register(Outcome)
class OutcomeAdmin(admin.ModelAdmin):
    """Outcomes are recorded and billed by services; staff decide disputes with the actions."""

    list_display = (
        "kind",
        "workspace",
        "price_credits",
        "status",
        "window_ends_at",
        "disputed_at",
        "resolved_at",
        "external_id",
    )
    list_select_related = ("workspace",)
    list_filter = ("status", "kind")
    search_fields = ("workspace__slug", "external_id", "kind")
    actions = ("uphold_disputes", "reject_disputes")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in Outcome._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The change permission allows the actions; a single outcome is only ever viewed.
        return obj is None and super().has_change_permission(request, obj)

    @admin.display(description="Credits", ordering="price_micros")
    def price_credits(self, row: Outcome) -> Decimal:
        return credits(row.price_micros)

    def _resolve(self, request: HttpRequest, queryset: QuerySet[Outcome], *, upheld: bool) -> None:
        done, skipped = 0, []
        for outcome in queryset.filter(status=OutcomeStatus.DISPUTED):
            try:
                outcome_resolve_dispute(
                    outcome=outcome, upheld=upheld, staff_user=cast(User, request.user)
                )
            except ApplicationError as exc:
                skipped.append(f"#{outcome.pk}: {exc.message}")
            else:
                done += 1
        not_disputed = queryset.exclude(status=OutcomeStatus.DISPUTED).count()
        verdict = "credited (not billed)" if upheld else "billed"
        self.message_user(request, f"{done} outcome(s) {verdict}.", messages.SUCCESS)
        if not_disputed:
            self.message_user(
                request,
                f"{not_disputed} selected outcome(s) were not disputed and were left as they are.",
                messages.WARNING,
            )
        for line in skipped:
            self.message_user(request, line, messages.ERROR)

    @admin.action(description="Uphold the disputes: credit, nothing billed", permissions=["change"])
    def uphold_disputes(self, request: HttpRequest, queryset: QuerySet[Outcome]) -> None:
        self._resolve(request, queryset, upheld=True)

    @admin.action(description="Reject the disputes: bill the outcomes", permissions=["change"])
    def reject_disputes(self, request: HttpRequest, queryset: QuerySet[Outcome]) -> None:
        self._resolve(request, queryset, upheld=False)


def _is_superuser(request: HttpRequest) -> bool:
    user = cast(User, request.user)
    return bool(user.is_active and user.is_superuser)


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    """Viewable by finance; editable by superusers only (prices and grants are policy)."""

    list_display = (
        "code",
        "name",
        "monthly_credits",
        "price_cents",
        "day_tokens",
        "user_day_requests",
        "self_serve",
        "stripe_price_id",
    )
    ordering = ("sort_order", "code")

    @admin.display(description="Monthly credits", ordering="monthly_credit_micros")
    def monthly_credits(self, row: Plan) -> Decimal:
        return credits(row.monthly_credit_micros)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _is_superuser(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_superuser(request)


@admin.register(BillingCustomer)
class BillingCustomerAdmin(ReadOnlyAdmin):
    list_display = ("workspace", "stripe_customer_id", "created_at")
    list_select_related = ("workspace",)
    search_fields = ("workspace__slug", "stripe_customer_id")


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = (
        "workspace",
        "plan_code",
        "status",
        "current_period_end",
        "cancel_at_period_end",
        "updated_at",
    )
    list_select_related = ("workspace",)
    list_filter = ("status", "plan_code")
    search_fields = ("workspace__slug", "stripe_subscription_id")


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(ReadOnlyAdmin):
    list_display = (
        "stripe_session_id",
        "workspace",
        "kind",
        "plan_code",
        "amount_micros",
        "status",
        "created_at",
    )
    list_select_related = ("workspace",)
    list_filter = ("kind", "status")
    search_fields = ("workspace__slug", "stripe_session_id")


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "type", "received_at", "processed_at", "outcome")
    list_filter = ("type",)
    search_fields = ("event_id", "type")


@admin.register(UsageReport)
class UsageReportAdmin(ReadOnlyAdmin):
    list_display = ("identifier", "workspace", "day", "value", "sent_at", "error")
    list_select_related = ("workspace",)
    list_filter = ("day",)
    search_fields = ("workspace__slug", "identifier")
