"""The credit ledger (docs/architecture.md, "Money"): every change of a workspace's credit is
one append-only row, and the workspace's running balance moves in the same transaction, under
that balance row's lock.

- `ledger_post` is the one writer. Its idempotency key is unique: posting the same key again
  creates nothing and returns the first posting (a retried webhook, a replayed call record).
- The balance is read from `CreditBalance`, never summed on the hot path. Entries are numbered
  in commit order per workspace (the id is taken under the lock), so `last_entry_id` says which
  entries a balance includes.
- A debit may refuse to overdraw (`allow_negative=False`: purchases, outcomes) or may not (a model
  call already made must be paid for; the credit reservation keeps that overdraft to zero).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from apps.common.errors import ApplicationError

from .models import CreditBalance, LedgerEntry, LedgerReason

MICROS_PER_USD = 1_000_000
MAX_USD = 1_000_000_000  # one amount typed by a person; far inside a bigint of micros


class InsufficientCreditError(ApplicationError):
    status = 402
    code = "insufficient_credit"


@dataclass(frozen=True, slots=True)
class Posting:
    entry: LedgerEntry
    created: bool  # False: the idempotency key was posted before; nothing changed now

    @property
    def balance_micros(self) -> int:
        return self.entry.balance_after_micros


def credits(micros: int) -> Decimal:
    """Micro-dollars in the display unit (settings.CREDIT_MICROS micros per credit)."""
    return Decimal(micros) / Decimal(settings.CREDIT_MICROS)


def usd_to_micros(usd: Decimal | int | str) -> int:
    """Dollars (as typed by a person) → micro-dollars; refuses sub-micro precision and text
    that is not a finite number."""
    try:
        dollars = Decimal(str(usd).strip())
    except InvalidOperation:
        dollars = Decimal("NaN")
    if not dollars.is_finite():
        raise ApplicationError(f"“{usd}” is not an amount in dollars.", field="usd")
    if abs(dollars) > MAX_USD:
        raise ApplicationError(f"Amounts are limited to ${MAX_USD:,}.", field="usd")
    amount = dollars * MICROS_PER_USD
    if amount != amount.to_integral_value():
        raise ApplicationError("Amounts are limited to six decimal places.", field="usd")
    return int(amount)


def balance_get(*, workspace_id: int) -> CreditBalance:
    """The workspace's balance row (zero if it never had an entry). Not locked."""
    found = CreditBalance.objects.filter(workspace_id=workspace_id).first()
    return found or CreditBalance(workspace_id=workspace_id, balance_micros=0, last_entry_id=0)


def ledger_post(
    *,
    workspace_id: int,
    delta_micros: int,
    reason: str,
    idempotency_key: str,
    metadata: dict[str, Any] | None = None,
    revenue_micros: int = 0,
    allow_negative: bool = True,
) -> Posting:
    """Append one entry and move the balance by `delta_micros`, atomically and exactly once per
    `idempotency_key`. Raises InsufficientCreditError (nothing written) when `allow_negative`
    is False and the entry would take the balance below zero."""
    if not isinstance(delta_micros, int) or isinstance(delta_micros, bool):
        raise TypeError("delta_micros must be an int (micro-dollars)")
    if not idempotency_key or len(idempotency_key) > 200:
        raise ValueError("idempotency_key must be 1–200 characters")
    if not reason or len(reason) > 100:
        raise ValueError("reason must be 1–100 characters")
    existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return Posting(existing, created=False)
    try:
        with transaction.atomic():
            CreditBalance.objects.get_or_create(workspace_id=workspace_id)
            balance = CreditBalance.objects.select_for_update().get(workspace_id=workspace_id)
            # Checked again under the lock: a concurrent poster of the same key committed first.
            existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
            if existing is not None:
                return Posting(existing, created=False)
            after = balance.balance_micros + delta_micros
            if delta_micros < 0 and after < 0 and not allow_negative:
                raise InsufficientCreditError(
                    f"Not enough credit: this needs {credits(-delta_micros):,} credits and "
                    f"the balance is {credits(balance.balance_micros):,}.",
                    extra={"balance_micros": balance.balance_micros},
                )
            entry = LedgerEntry.objects.create(
                workspace_id=workspace_id,
                delta_micros=delta_micros,
                balance_after_micros=after,
                reason=reason,
                idempotency_key=idempotency_key,
                revenue_micros=revenue_micros,
                metadata=metadata or {},
            )
            balance.balance_micros = after
            balance.last_entry_id = entry.pk
            balance.save(update_fields=["balance_micros", "last_entry_id", "updated_at"])
    except IntegrityError:
        # The same key inserted by a transaction that did not wait on our lock (another
        # workspace id with the same key is a caller's bug, and is answered the same way).
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return Posting(existing, created=False)
    return Posting(entry, created=True)


# What an operator may grant credit for by hand (`manage.py credits grant`).
GRANT_REASONS = (LedgerReason.ADJUSTMENT, LedgerReason.REFUND, LedgerReason.TOPUP)


def credits_grant(
    *,
    workspace_id: int,
    amount_micros: int,
    reason: str,
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Posting:
    """Add credit by hand (operators). Without a key every grant is new; with one, repeating it
    changes nothing, and reusing it for a different grant is refused."""
    if amount_micros <= 0:
        raise ApplicationError(
            "Grant a positive amount (to take credit back, use `credits take`).", field="usd"
        )
    if reason not in GRANT_REASONS:
        raise ApplicationError(
            f"Unknown reason “{reason}”: use one of {', '.join(GRANT_REASONS)}.", field="reason"
        )
    return _operator_post(
        workspace_id=workspace_id,
        delta_micros=amount_micros,
        reason=reason,
        idempotency_key=idempotency_key,
        metadata=metadata,
    )


def credits_take(
    *,
    workspace_id: int,
    amount_micros: int,
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Posting:
    """Take credit back by hand (a correcting `adjustment` entry): never below zero."""
    if amount_micros <= 0:
        raise ApplicationError("Take a positive amount.", field="usd")
    return _operator_post(
        workspace_id=workspace_id,
        delta_micros=-amount_micros,
        reason=LedgerReason.ADJUSTMENT,
        idempotency_key=idempotency_key,
        metadata=metadata,
        allow_negative=False,
    )


def _operator_post(
    *,
    workspace_id: int,
    delta_micros: int,
    reason: str,
    idempotency_key: str | None,
    metadata: dict[str, Any] | None,
    allow_negative: bool = True,
) -> Posting:
    key = idempotency_key.strip() if idempotency_key is not None else f"grant:{uuid.uuid4().hex}"
    if not key or len(key) > 200:
        raise ApplicationError("An idempotency key has 1–200 characters.", field="idempotency_key")
    posting = ledger_post(
        workspace_id=workspace_id,
        delta_micros=delta_micros,
        reason=reason,
        idempotency_key=key,
        metadata=metadata,
        allow_negative=allow_negative,
    )
    entry = posting.entry
    same = (entry.workspace_id, entry.delta_micros, entry.reason) == (
        workspace_id,
        delta_micros,
        reason,
    )
    if not posting.created and not same:
        raise ApplicationError(
            f"The idempotency key “{key}” was used for another entry "
            f"({entry.reason} {credits(entry.delta_micros):,} credits).",
            field="idempotency_key",
        )
    return posting
