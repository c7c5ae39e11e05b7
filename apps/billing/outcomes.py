"""Outcome billing (docs/architecture.md, "Money"): a billable result is recorded pending,
may be disputed by the workspace's owners and admins during a dispute window, and is billed once
that window has passed.

    pending ──dispute──▶ disputed ──upheld──▶ credited (nothing billed)
       │                    └──────rejected──▶ final (billed)
       └──window passed──▶ final (billed)

Billing is one ledger debit keyed `outcome:<id>`, so however often or concurrently the finaliser
runs, an outcome is billed exactly once. The debit may take the balance below zero: the result
was delivered and the workspace let the window pass (or lost the dispute), so the money is owed;
refusing would leave a delivered outcome unbilled with no state to retry from, while a negative
balance is an honest record of the debt that the paywall enforces and the next top-up or plan
grant pays off.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.common.errors import ApplicationError, PermissionDeniedError
from apps.workspaces.models import Membership, User, Workspace

from .ledger import ledger_post
from .models import LedgerReason, Outcome, OutcomeStatus

log = structlog.get_logger(__name__)

DISPUTE_REASON_MAX_CHARS = 2_000
# Outcomes billed per transaction by the finaliser: locks are held briefly, progress is kept.
FINALISE_BATCH = 100


class OutcomeConflictError(ApplicationError):
    """The external_id was recorded before with another kind or price."""

    status = 409
    code = "outcome_conflict"


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _trace_uuid(trace_id: uuid.UUID | str | None) -> uuid.UUID | None:
    if trace_id is None or isinstance(trace_id, uuid.UUID):
        return trace_id
    try:
        return uuid.UUID(str(trace_id))
    except ValueError as exc:
        raise ApplicationError("trace_id must be a UUID.", field="trace_id") from exc


def outcome_record(
    *,
    workspace: Workspace,
    kind: str,
    price_micros: int,
    external_id: str,
    trace_id: uuid.UUID | str | None = None,
    run_id: str = "",
) -> Outcome:
    """Record a billable outcome, pending for the dispute window. Idempotent per workspace and
    `external_id`: recording it again returns the first row (and refuses a different kind or
    price under the same id, which would be a caller's bug)."""
    outcome, _ = outcome_record_or_get(
        workspace=workspace,
        kind=kind,
        price_micros=price_micros,
        external_id=external_id,
        trace_id=trace_id,
        run_id=run_id,
    )
    return outcome


def outcome_record_or_get(
    *,
    workspace: Workspace,
    kind: str,
    price_micros: int,
    external_id: str,
    trace_id: uuid.UUID | str | None = None,
    run_id: str = "",
) -> tuple[Outcome, bool]:
    """`outcome_record`, also saying whether this call created the outcome (False: it was
    recorded before with the same kind and price; its trace and run ids are kept)."""
    kind = (kind or "").strip()
    if not kind or len(kind) > 100:
        raise ApplicationError("Give the outcome a kind of 1–100 characters.", field="kind")
    if not isinstance(price_micros, int) or isinstance(price_micros, bool) or price_micros <= 0:
        raise ApplicationError(
            "The price must be a positive whole number of micro-dollars.", field="price_micros"
        )
    external_id = (external_id or "").strip()
    if not external_id or len(external_id) > 200:
        raise ApplicationError("external_id must be 1–200 characters.", field="external_id")
    if len(run_id) > 64:
        raise ApplicationError("run_id must be at most 64 characters.", field="run_id")
    trace = _trace_uuid(trace_id)

    existing = Outcome.objects.filter(workspace=workspace, external_id=external_id).first()
    if existing is None:
        try:
            with transaction.atomic():
                outcome = Outcome.objects.create(
                    workspace=workspace,
                    kind=kind,
                    price_micros=price_micros,
                    external_id=external_id,
                    trace_id=trace,
                    run_id=run_id,
                    window_ends_at=timezone.now()
                    + timedelta(days=settings.OUTCOME_DISPUTE_WINDOW_DAYS),
                )
        except IntegrityError:
            # A concurrent recorder of the same id committed first: answer with its row.
            existing = Outcome.objects.get(workspace=workspace, external_id=external_id)
        else:
            log.info("outcome.recorded", workspace=workspace.slug, outcome_id=outcome.pk)
            return outcome, True
    if existing.kind != kind or existing.price_micros != price_micros:
        raise OutcomeConflictError(
            f"An outcome with external_id “{external_id}” was already recorded with another "
            "kind or price.",
            field="external_id",
        )
    return existing, False


def outcome_dispute(*, outcome: Outcome, membership: Membership, reason: str) -> Outcome:
    """Dispute a pending outcome before its window ends (owners and admins of its workspace)."""
    if membership.workspace_id != outcome.workspace_id or not membership.can_manage:
        raise PermissionDeniedError(
            "Only owners and admins of this workspace can dispute outcomes."
        )
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Say why this outcome should not be billed.", field="reason")
    if len(reason) > DISPUTE_REASON_MAX_CHARS:
        raise ApplicationError(
            f"Keep the reason under {DISPUTE_REASON_MAX_CHARS:,} characters.", field="reason"
        )
    with transaction.atomic():
        locked = Outcome.objects.select_for_update().get(pk=outcome.pk)
        now = timezone.now()
        if locked.status == OutcomeStatus.DISPUTED:
            raise ApplicationError("This outcome is already disputed; staff will review it.")
        if locked.status == OutcomeStatus.CREDITED:
            raise ApplicationError("This outcome was credited: it is not billed.")
        if locked.status == OutcomeStatus.FINAL or now >= locked.window_ends_at:
            raise ApplicationError(
                "The dispute window for this outcome closed on "
                f"{_utc(locked.window_ends_at)}; it can no longer be disputed."
            )
        locked.status = OutcomeStatus.DISPUTED
        locked.disputed_at = now
        locked.disputed_by_id = membership.user_id
        locked.dispute_reason = reason
        locked.save(
            update_fields=[
                "status",
                "disputed_at",
                "disputed_by_id",
                "dispute_reason",
                "updated_at",
            ]
        )
    log.info("outcome.disputed", outcome_id=locked.pk, by=membership.user_id)
    return locked


def _bill(outcome: Outcome, *, now: datetime) -> None:
    """Debit the outcome's price (once: the key is the outcome's id) and mark it final. The
    caller holds the outcome's row lock inside its transaction."""
    posting = ledger_post(
        workspace_id=outcome.workspace_id,
        delta_micros=-outcome.price_micros,
        reason=LedgerReason.OUTCOME,
        idempotency_key=f"outcome:{outcome.pk}",
        metadata={
            "outcome_id": outcome.pk,
            "kind": outcome.kind,
            "external_id": outcome.external_id,
            "trace_id": str(outcome.trace_id) if outcome.trace_id else None,
            "run_id": outcome.run_id,
        },
        allow_negative=True,  # owed once delivered and undisputed: see the module docstring
    )
    outcome.status = OutcomeStatus.FINAL
    outcome.resolved_at = now
    outcome.ledger_entry_id = posting.entry.pk
    outcome.save(update_fields=["status", "resolved_at", "ledger_entry_id", "updated_at"])


def outcome_resolve_dispute(*, outcome: Outcome, upheld: bool, staff_user: User) -> Outcome:
    """Staff decide a dispute: upheld → credited (nothing billed); rejected → final, billed."""
    if not (staff_user.is_active and staff_user.is_staff):
        raise PermissionDeniedError("Only platform staff can resolve disputes.")
    with transaction.atomic():
        locked = Outcome.objects.select_for_update().get(pk=outcome.pk)
        if locked.status != OutcomeStatus.DISPUTED:
            raise ApplicationError(
                f"Only disputed outcomes can be resolved; this one is {locked.status}."
            )
        now = timezone.now()
        if upheld:
            locked.status = OutcomeStatus.CREDITED
            locked.resolved_at = now
            locked.save(update_fields=["status", "resolved_at", "updated_at"])
        else:
            _bill(locked, now=now)
    log.info("outcome.dispute_resolved", outcome_id=locked.pk, upheld=upheld, by=staff_user.pk)
    return locked


def outcomes_finalise(*, now: datetime | None = None) -> int:
    """Bill every pending outcome whose dispute window has passed (across all workspaces).
    Safe to run concurrently: rows another finaliser holds are skipped, and the ledger key
    makes a second debit impossible anyway. Returns how many outcomes this call billed."""
    now = now or timezone.now()
    billed = 0
    while True:
        with transaction.atomic():
            due = list(
                Outcome.objects.select_for_update(skip_locked=True)
                .filter(status=OutcomeStatus.PENDING, window_ends_at__lte=now)
                .order_by("window_ends_at", "pk")[:FINALISE_BATCH]
            )
            for outcome in due:
                _bill(outcome, now=now)
        billed += len(due)
        if len(due) < FINALISE_BATCH:
            break
    if billed:
        log.info("outcomes.finalised", count=billed)
    return billed
