"""What the layers above the gateway plug into it, at their AppConfig.ready() (see
docs/architecture.md, "Layers and ports").

The gateway sits below billing and traces, yet every call needs the workspace's plan limits and
credit, and every finished call must reach the ledger and the trace store. The gateway names
what it needs as Protocols here; billing plugs in `AccountPort` and a debit port, traces plugs
in the call sink. Nothing is imported upward, and an unplugged port fails closed: a call with
no account port is refused (`PortNotPlugged`), never run unbudgeted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import redis.asyncio as aioredis
from django.core.exceptions import ImproperlyConfigured

from apps.workspaces.models import Workspace

from .core.context import CallSink, CreditLimit, DebitPort


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """The daily limits a workspace's plan grants (AI settings may override them)."""

    day_tokens: int
    user_day_requests: int


class AccountPort(Protocol):
    """The workspace's commercial terms, as the gateway's reservation needs them."""

    def plan_limits(self, workspace: Workspace) -> PlanLimits: ...

    def credit(self, workspace: Workspace) -> CreditLimit:
        """The ledger balance and the newest entry it includes (the credit scope's limit)."""
        ...


SinkFactory = Callable[[aioredis.Redis], CallSink]
DebitFactory = Callable[[aioredis.Redis], DebitPort]


class PortNotPlugged(ImproperlyConfigured):
    pass


class _Ports:
    def __init__(self) -> None:
        self._account: AccountPort | None = None
        self._sink: SinkFactory | None = None
        self._debit: DebitFactory | None = None

    def plug(
        self,
        *,
        account: AccountPort | None = None,
        sink: SinkFactory | None = None,
        debit: DebitFactory | None = None,
    ) -> None:
        """Plug implementations in (idempotent: ready() may run more than once in tests)."""
        self._account = account or self._account
        self._sink = sink or self._sink
        self._debit = debit or self._debit

    @property
    def account(self) -> AccountPort:
        return _required(self._account, "account", "apps.billing")

    @property
    def sink(self) -> SinkFactory:
        return _required(self._sink, "call sink", "apps.traces")

    @property
    def debit(self) -> DebitFactory:
        return _required(self._debit, "debit", "apps.billing")


T = TypeVar("T")


def _required(port: T | None, name: str, app: str) -> T:
    if port is None:
        raise PortNotPlugged(f"The gateway's {name} port is not plugged in: install {app}.")
    return port


ports = _Ports()
