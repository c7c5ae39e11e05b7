"""Who is calling, under which limits, and what each call leaves behind (the ports' payloads)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .budget import Scope
from .credit_hash import balance_key
from .errors import CREDIT_BALANCE
from .providers.base import Provider
from .routing import RoutingTable
from .types import ActorType


@dataclass(frozen=True, slots=True)
class Actor:
    """The polymorphic "who" of a call: a user, an agent, the system or an API key."""

    type: ActorType
    id: str


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-workspace limits. Defaults are the free plan's (issue #3)."""

    workspace_day_tokens: int = 50_000
    user_day_requests: int = 500
    max_tokens: int = 4096  # per-call cap on max_tokens
    max_input_tokens: int = 100_000  # larger inputs are refused before any reservation


@dataclass(frozen=True, slots=True)
class CreditLimit:
    """The workspace's credit as the caller read it from the ledger: the balance scope's limit."""

    balance_micros: int
    seq: int  # the newest ledger entry the balance includes
    byok_fee_micros: int = 0  # charged per call on the workspace's own key, instead of the cost


@dataclass(frozen=True, slots=True)
class CallScope:
    """Everything the gateway needs about the caller; built by Django glue from the workspace."""

    schema: str
    workspace_id: int
    actor: Actor
    feature: str
    routing: RoutingTable
    providers: Mapping[str, Provider]  # the configured ones (platform key, BYOK, local)
    limits: Limits = Limits()
    user_id: int | None = None
    byok: frozenset[str] = frozenset()  # providers that use the workspace's own key
    extra_scopes: tuple[Scope, ...] = ()  # agent / run scopes added by callers
    credit: CreditLimit | None = None  # None: the call is not paid from a credit balance
    timeout: float = 60.0
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One finished call: becomes an llm_call_log row and an llm_trace row (written off the hot
    path by the sink's consumer, which masks PII before storage)."""

    call_id: str
    request_id: str
    trace_id: str
    schema: str
    workspace_id: int
    actor_type: str
    actor_id: str
    feature: str
    alias: str
    provider: str
    model: str
    status: str  # ok | error | cancelled | truncated
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_micros: int
    cached: bool
    fallback_used: bool
    byok: bool
    offline: bool
    duration_ms: float
    started_at: float
    finish_reason: str | None
    error_code: str | None = None
    error_message: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    price_version: str = ""
    attempts: tuple[str, ...] = ()
    trace: dict[str, Any] = field(default_factory=dict)


class CallSink(Protocol):
    """Where finished calls go (a Redis queue drained into llm_call_log + llm_trace)."""

    async def record(self, record: CallRecord) -> None: ...


class DebitPort(Protocol):
    """The credit ledger's entry point: one debit per settled call, idempotent by call id."""

    async def debit(self, record: CallRecord) -> None: ...


class NoDebit:
    """Until the billing issue plugs in the ledger, settled calls debit nothing."""

    async def debit(self, record: CallRecord) -> None:
        return None


def credit_charge(record: CallRecord, *, byok_fee: int) -> int:
    """What a finished call takes from its workspace's credit, in micro-dollars: its cost, or on
    the workspace's own key (BYOK) only the platform fee; nothing for a cache hit or for a call
    that used nothing. The reservation's settle and the ledger debit both charge this."""
    if record.cached:
        return 0
    if record.byok:
        used = record.status != "error" or record.input_tokens + record.output_tokens > 0
        return byok_fee if used else 0
    return record.cost_micros


def credit_scope(scope: CallScope, *, amount: int) -> Scope | None:
    """The credit balance scope of a call whose worst-case charge is `amount`."""
    if scope.credit is None:
        return None
    return Scope(
        name=CREDIT_BALANCE,
        key=balance_key(scope.schema),
        limit=scope.credit.balance_micros,
        amount=amount,
        kind="budget",
        unit="micro-dollars",
        ttl=86400,
        seq=scope.credit.seq,
    )


def daily_scopes(scope: CallScope, *, tokens: int, now: float | None = None) -> list[Scope]:
    """The budget scopes every call counts against today (UTC): the workspace's tokens and,
    for a user, their requests. `tokens` is this call's worst case. Keys start with the schema."""
    now = time.time() if now is None else now
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    resets_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((int(now) // 86400 + 1) * 86400))
    scopes = [
        Scope(
            name="workspace_day_tokens",
            key=f"{scope.schema}:budget:workspace_day_tokens:{day}",
            limit=scope.limits.workspace_day_tokens,
            amount=tokens,
            kind="budget",
            unit="tokens",
            resets_at=resets_at,
        )
    ]
    if scope.user_id is not None:
        scopes.append(
            Scope(
                name="user_day_requests",
                key=f"{scope.schema}:budget:user_day_requests:{scope.user_id}:{day}",
                limit=scope.limits.user_day_requests,
                amount=1,
                kind="rate",
                unit="requests",
                resets_at=resets_at,
            )
        )
    return scopes
