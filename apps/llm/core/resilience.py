"""Retry, fallback and circuit breaking (docs/architecture.md, "The gateway").

A call tries the primary route, retries it once on a retryable failure, then falls back once to
the alias's secondary. A provider that keeps failing trips its breaker: for a cool-down its
routes are skipped and calls go straight to the fallback instead of waiting out timeouts; then
one trial call is let through, and only its success closes the circuit again.
Breakers are per process: each web or worker process learns on its own, which is enough to
shed a dead provider within a few calls. A circuit is usually a provider name; a workspace's own
key (BYOK) gets a circuit of its own, so its failures never shed the platform's key for everyone.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
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
    # Seconds on a monotonic clock; tests pass one they move by hand instead of sleeping.
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    def allows(self, circuit: str, *, now: float | None = None) -> bool:
        """Closed, or open for longer than the cool-down (half-open: a trial may go)."""
        state = self._states.get(circuit)
        if state is None or state.opened_at is None:
            return True
        now = self.clock() if now is None else now
        return now - state.opened_at >= self.cooldown

    def begin(self, circuit: str, *, now: float | None = None) -> None:
        """An attempt starts. On an open circuit it is the trial: the cool-down restarts, so
        calls arriving meanwhile keep skipping the provider instead of all waiting on it."""
        state = self._states.get(circuit)
        if state is not None and state.opened_at is not None:
            state.opened_at = self.clock() if now is None else now

    def record_success(self, circuit: str) -> None:
        self._states.pop(circuit, None)

    def record_failure(self, circuit: str, *, now: float | None = None) -> None:
        state = self._states.setdefault(circuit, _State())
        state.failures += 1
        if state.failures >= self.threshold:
            state.opened_at = self.clock() if now is None else now

    def is_open(self, circuit: str) -> bool:
        return not self.allows(circuit)


@dataclass(frozen=True, slots=True)
class Attempt:
    route: Route
    is_retry: bool
    is_fallback: bool
    circuit: str  # the breaker circuit this attempt reports to


def provider_circuit(route: Route) -> str:
    return route.provider


def attempt_plan(
    routes: tuple[Route, ...],
    breaker: CircuitBreaker,
    *,
    circuit: Callable[[Route], str] = provider_circuit,
) -> list[Attempt]:
    """Primary, its one retry, then the one fallback — skipping routes whose circuit is open.
    If every circuit is open, still try the primary once rather than fail without trying."""
    plan: list[Attempt] = []
    primary, *rest = routes
    if breaker.allows(circuit(primary)):
        plan += [
            Attempt(primary, False, False, circuit(primary)),
            Attempt(primary, True, False, circuit(primary)),
        ]
    for route in rest[:1]:
        if breaker.allows(circuit(route)):
            plan.append(Attempt(route, False, True, circuit(route)))
    return plan or [Attempt(primary, False, False, circuit(primary))]
