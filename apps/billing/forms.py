"""Forms of the billing page and the finance admin: validation only; writes go through services."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.utils import timezone

from apps.workspaces.models import Workspace

from .outcomes import DISPUTE_REASON_MAX_CHARS


class TopUpForm(forms.Form):
    """Whole dollars within the configured top-up range (Checkout sells whole dollars)."""

    usd = forms.DecimalField(
        label="Amount (USD)",
        error_messages={
            "required": "Enter an amount in dollars, e.g. 20.",
            "invalid": "Enter the amount as a whole number of dollars, e.g. 20.",
        },
        widget=forms.NumberInput(attrs={"step": "1", "inputmode": "numeric"}),
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        low, high = settings.BILLING_TOPUP_MIN_USD, settings.BILLING_TOPUP_MAX_USD
        self.fields["usd"].help_text = f"Whole dollars, from ${low:,} to ${high:,}."
        self.fields["usd"].widget.attrs.update(min=low, max=high)

    def clean_usd(self) -> int:
        usd: Decimal = self.cleaned_data["usd"]
        low, high = settings.BILLING_TOPUP_MIN_USD, settings.BILLING_TOPUP_MAX_USD
        if usd <= 0:
            raise forms.ValidationError("A top-up must be a positive amount of dollars.")
        if usd != usd.to_integral_value():
            raise forms.ValidationError("Top-ups are in whole dollars (no cents).")
        if usd < low:
            raise forms.ValidationError(f"The smallest top-up is ${low:,}.")
        if usd > high:
            raise forms.ValidationError(f"The largest top-up is ${high:,}.")
        return int(usd)


class UpgradeForm(forms.Form):
    plan = forms.SlugField(max_length=32, error_messages={"required": "Choose a plan."})


class DisputeForm(forms.Form):
    reason = forms.CharField(
        label="Why should this not be billed?",
        max_length=DISPUTE_REASON_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={
            "required": "Say why this outcome should not be billed.",
            "max_length": f"Keep the reason under {DISPUTE_REASON_MAX_CHARS:,} characters.",
        },
    )


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def this_month() -> tuple[datetime, datetime]:
    """[the 1st of this month, tomorrow) in UTC: the default period."""
    today = timezone.now().astimezone(UTC).date()
    return _start_of(today.replace(day=1)), _start_of(today + timedelta(days=1))


class PeriodForm(forms.Form):
    """A range of whole days (UTC), both ends included: [start 00:00, end + 1 day 00:00)."""

    start = forms.DateField(
        label="From",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )
    end = forms.DateField(
        label="To (included)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end < start:
            self.add_error("end", "The end date is before the start date.")
        elif end and end >= date.max - timedelta(days=1):
            self.add_error("end", "Choose an earlier end date.")
        return cleaned

    def period(self) -> tuple[datetime, datetime]:
        """[from, until) in UTC; missing ends default to this month so far."""
        today = timezone.now().astimezone(UTC).date()
        start = self.cleaned_data.get("start") or today.replace(day=1)
        end = self.cleaned_data.get("end") or max(today, start)
        return _start_of(start), _start_of(end + timedelta(days=1))


class LedgerExportForm(PeriodForm):
    """Both dates are required to export; the workspace (by address) is optional."""

    workspace = forms.SlugField(
        label="Workspace address", required=False, help_text="Empty: every workspace."
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for name in ("start", "end"):
            self.fields[name].required = True
            self.fields[name].error_messages["required"] = "Choose a date (YYYY-MM-DD)."

    def clean_workspace(self) -> Workspace | None:
        slug = self.cleaned_data.get("workspace")
        if not slug:
            return None
        found = Workspace.objects.filter(slug=slug).first()
        if found is None:
            raise forms.ValidationError(f"No workspace has the address “{slug}”.")
        return found
