"""Money in templates: the ledger counts integer micro-dollars, people read credits and dollars."""

from __future__ import annotations

from decimal import Decimal

from django import template

from apps.billing.ledger import MICROS_PER_USD, credits

register = template.Library()


@register.filter(name="credits")
def credits_filter(micros: int) -> Decimal:
    """Micro-dollars → credits (settings.CREDIT_MICROS per credit)."""
    return credits(int(micros))


@register.filter
def dollars(micros: int) -> str:
    """Micro-dollars as a signed dollar amount to the cent: "$1,234.50", "-$0.23". Amounts
    under a cent keep their digits ("$0.0011"), so a small cost never reads as nothing."""
    amount = Decimal(int(micros)) / MICROS_PER_USD
    sign = "-" if amount < 0 else ""
    if 0 < abs(amount) < Decimal("0.01"):
        return f"{sign}${abs(amount).normalize():f}"
    return f"{sign}${abs(amount):,.2f}"


@register.filter
def cents_usd(cents: int) -> Decimal:
    """Cents → dollars (plan prices)."""
    return Decimal(int(cents)) / 100
