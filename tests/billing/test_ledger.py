"""The ledger: grants on creation, idempotent postings, append-only rows, and no overdraft under
200 concurrent debits from threads and from processes."""

from __future__ import annotations

import multiprocessing
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from apps.billing.ledger import (
    InsufficientCreditError,
    balance_get,
    credits_grant,
    ledger_post,
    usd_to_micros,
)
from apps.billing.models import LedgerEntry
from apps.common.errors import ApplicationError
from apps.workspaces.models import Workspace
from tests.asgi_server import run_committed
from tests.billing import workers
from tests.billing.conftest import MakeWorkspace
from tests.factories import LedgerEntryFactory

CREDIT = 1_000  # µ$


def test_a_new_workspace_starts_with_its_plans_grant(make_workspace: MakeWorkspace) -> None:
    free, enterprise = make_workspace(), make_workspace(plan="enterprise")
    month = timezone.now().strftime("%Y-%m")

    assert balance_get(workspace_id=free.pk).balance_micros == 1_000_000
    assert balance_get(workspace_id=enterprise.pk).balance_micros == 500_000_000
    (grant,) = LedgerEntry.objects.filter(workspace=free)
    assert (grant.reason, grant.idempotency_key) == ("plan_grant", f"plan_grant:{free.pk}:{month}")


def test_replaying_an_idempotency_key_creates_nothing(workspace: Workspace) -> None:
    first = ledger_post(
        workspace_id=workspace.pk, delta_micros=-250, reason="feature.chat", idempotency_key="k1"
    )
    again = [
        ledger_post(
            workspace_id=workspace.pk,
            delta_micros=-250,
            reason="feature.chat",
            idempotency_key="k1",
        )
        for _ in range(3)
    ]

    assert first.created
    assert not any(p.created for p in again)
    assert {p.entry.pk for p in again} == {first.entry.pk}
    assert balance_get(workspace_id=workspace.pk).balance_micros == 1_000_000 - 250
    assert LedgerEntry.objects.filter(idempotency_key="k1").count() == 1


def test_the_database_refuses_to_edit_a_ledger_row(workspace: Workspace) -> None:
    entry = LedgerEntryFactory.create(workspace=workspace, delta_micros=1_000_000)

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(delta_micros=5)

    entry.refresh_from_db()
    assert entry.delta_micros == 1_000_000


def test_an_overdraft_refused_writes_nothing(workspace: Workspace) -> None:
    with pytest.raises(InsufficientCreditError) as refused:
        ledger_post(
            workspace_id=workspace.pk,
            delta_micros=-1_000_001,
            reason="outcome",
            idempotency_key="too-much",
            allow_negative=False,
        )

    assert refused.value.status == 402
    assert not LedgerEntry.objects.filter(idempotency_key="too-much").exists()
    assert balance_get(workspace_id=workspace.pk).balance_micros == 1_000_000


@pytest.mark.parametrize("text", ["0", "-5", "abc", "NaN", "Infinity", "1.0000001", ""])
def test_grants_refuse_bad_amounts(workspace: Workspace, text: str) -> None:
    entries = LedgerEntry.objects.filter(workspace=workspace).count()

    with pytest.raises(ApplicationError):
        credits_grant(
            workspace_id=workspace.pk, amount_micros=usd_to_micros(text), reason="adjustment"
        )

    assert LedgerEntry.objects.filter(workspace=workspace).count() == entries


def test_a_grant_key_reused_for_another_grant_is_refused(workspace: Workspace) -> None:
    credits_grant(
        workspace_id=workspace.pk, amount_micros=5_000_000, reason="adjustment", idempotency_key="g"
    )
    repeat = credits_grant(
        workspace_id=workspace.pk, amount_micros=5_000_000, reason="adjustment", idempotency_key="g"
    )

    with pytest.raises(ApplicationError, match="used for another entry"):
        credits_grant(
            workspace_id=workspace.pk, amount_micros=7, reason="adjustment", idempotency_key="g"
        )
    assert not repeat.created
    assert balance_get(workspace_id=workspace.pk).balance_micros == 6_000_000


def _funded_with_100_credits(make: MakeWorkspace) -> Workspace:
    workspace = make()
    run_committed(
        lambda: ledger_post(
            workspace_id=workspace.pk,
            delta_micros=100 * CREDIT - 1_000_000,
            reason="adjustment",
            idempotency_key=f"setup:{workspace.pk}",
        )
    )
    return workspace


def _assert_exactly_100_debits(workspace: Workspace, keys: list[str], succeeded: int) -> None:
    def check() -> None:
        assert succeeded == 100
        assert balance_get(workspace_id=workspace.pk).balance_micros == 0
        debits = LedgerEntry.objects.filter(workspace=workspace, idempotency_key__in=keys)
        assert debits.count() == 100
        assert len(set(debits.values_list("idempotency_key", flat=True))) == 100
        # The running balance is consistent row by row: each entry follows the one before.
        rows = list(
            LedgerEntry.objects.filter(workspace=workspace)
            .order_by("id")
            .values_list("delta_micros", "balance_after_micros")
        )
        running = 0
        for delta, after in rows:
            running += delta
            assert after == running
        assert min(after for _, after in rows) >= 0

    run_committed(check)


@pytest.mark.parametrize("round_", [1, 2])
def test_200_concurrent_debits_from_threads_never_overdraw(
    make_committed_workspace: MakeWorkspace, round_: int
) -> None:
    workspace = _funded_with_100_credits(make_committed_workspace)
    keys = [f"thread:{uuid.uuid4().hex}" for _ in range(200)]

    def debit(key: str) -> bool:
        try:
            ledger_post(
                workspace_id=workspace.pk,
                delta_micros=-CREDIT,
                reason="feature.test",
                idempotency_key=key,
                allow_negative=False,
            )
        except InsufficientCreditError:
            return False
        finally:
            connections.close_all()
        return True

    with ThreadPoolExecutor(max_workers=24) as pool:
        succeeded = sum(pool.map(debit, keys))

    _assert_exactly_100_debits(workspace, keys, succeeded)


def test_200_concurrent_debits_from_processes_never_overdraw(
    make_committed_workspace: MakeWorkspace, child_env: dict[str, str]
) -> None:
    workspace = _funded_with_100_credits(make_committed_workspace)
    keys = [f"process:{uuid.uuid4().hex}" for _ in range(200)]
    shares = [keys[i::8] for i in range(8)]

    with multiprocessing.get_context("spawn").Pool(8) as pool:
        results = pool.starmap(workers.debit_many, [(workspace.pk, s, CREDIT) for s in shares])

    assert sum(refused for _, refused in results) == 100
    _assert_exactly_100_debits(workspace, keys, sum(ok for ok, _ in results))
