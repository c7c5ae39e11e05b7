"""Code run in spawned child processes (importable, so `multiprocessing` can start it there)."""

from __future__ import annotations

import os
import signal
from typing import Any


def flush_then_die(where: str) -> None:
    """Run the call-record flush and SIGKILL this process at `where`: "before_commit" (the
    batch is claimed, nothing stored) or "before_ack" (stored and committed, not acknowledged)."""
    import django

    django.setup()
    from apps.traces import services

    def die(*args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if where == "before_commit":
        services._store = die  # type: ignore[assignment]
    else:
        services.LeasedOutbox.ack = die  # type: ignore[method-assign]
    services.call_records_flush()
