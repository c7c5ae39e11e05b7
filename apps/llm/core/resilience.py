"""Retry, fallback and circuit breaking (DESIGN §4 step 6).

A call tries the primary route, retries it once on a retryable failure, then falls back once to
the alias's secondary. A provider that keeps failing trips its breaker: for a cool-down its
routes are skipped and calls go straight to the fallback instead of waiting out timeouts.
Breakers are per process: each web or worker process learns on its own, which is enough to
shed a dead provider within a few calls.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from .routing import Route


@dataclass(slots=True)
class _State:
    failures: int = 0
    opened_at: float | None = None


@dataclass
class CircuitBreaker:
    threshold: int = 5  # consecutive retryable failures that open the circuit
    cooldown: float = 30.0  # seconds before one trial call is let through again
    _states: dict[str, _State] = field(default_factory=dict)
    fallbacks: Counter[str] = field(default_factory=Counter)  # fallbacks away from each provider

    def allows(self, provider: str, *, now: float | None = None) -> bool:
        state = self._states.get(provider)
        if state is None or state.opened_at is None:
            return True
        now = time.monotonic() if now is None else now
        return now - state.opened_at >= self.cooldown  # half-open: let a trial through

    def record_success(self, provider: str) -> None:
        self._states.pop(provider, None)

    def record_failure(self, provider: str, *, now: float | None = None) -> None:
        state = self._states.setdefault(provider, _State())
        state.failures += 1
        if state.failures >= self.threshold:
            state.opened_at = time.monotonic() if now is None else now

    def is_open(self, provider: str) -> bool:
        return not self.allows(provider)


@dataclass(frozen=True, slots=True)
class Attempt:
    route: Route
    is_retry: bool
    is_fallback: bool


def attempt_plan(routes: tuple[Route, ...], breaker: CircuitBreaker) -> list[Attempt]:
    """Primary, its one retry, then the one fallback — skipping providers whose circuit is open.
    If every circuit is open, still try the primary once rather than fail without trying."""
    plan: list[Attempt] = []
    primary, *rest = routes
    if breaker.allows(primary.provider):
        plan += [Attempt(primary, False, False), Attempt(primary, True, False)]
    for route in rest[:1]:
        if breaker.allows(route.provider):
            plan.append(Attempt(route, False, True))
    return plan or [Attempt(primary, False, False)]
