"""Code run in spawned child processes (importable, so `multiprocessing` can start it there)."""

from __future__ import annotations

import os
import signal
from typing import Any


def _django() -> None:
    import django

    django.setup()


def debit_many(workspace_id: int, keys: list[str], amount: int) -> tuple[int, int]:
    """Post one debit per key (no overdraft); return (succeeded, refused)."""
    _django()
    from django.db import connections

    from apps.billing.ledger import InsufficientCreditError, ledger_post

    ok = refused = 0
    for key in keys:
        try:
            ledger_post(
                workspace_id=workspace_id,
                delta_micros=-amount,
                reason="feature.test",
                idempotency_key=key,
                allow_negative=False,
            )
        except InsufficientCreditError:
            refused += 1
        else:
            ok += 1
    connections.close_all()
    return ok, refused


def post_debits_then_die(where: str, lease: int) -> None:
    """Run the debit worker and SIGKILL this process at `where`: "before_commit" (just before a
    debit is posted) or "before_ack" (its debit committed, not yet acknowledged)."""
    _django()
    from apps.billing import debit_queue

    def die(*args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if where == "before_commit":
        debit_queue.ledger_post = die  # type: ignore[assignment]
    else:
        debit_queue._acknowledge = die
    debit_queue.call_debits_post(lease=lease)
