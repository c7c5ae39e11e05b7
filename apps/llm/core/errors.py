"""The gateway's errors. Edges map them to HTTP: see `status` on each."""

from __future__ import annotations

from dataclasses import dataclass


class GatewayError(Exception):
    """Base class: a call that did not produce an answer. The message is safe to show users."""

    code = "gateway_error"
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidRequestError(GatewayError):
    """The request itself is wrong; `field` names the offending input."""

    code = "invalid_request"
    status = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class UnknownAliasError(InvalidRequestError):
    code = "unknown_alias"
    status = 404


CREDIT_BALANCE = "credit_balance"  # the scope name of the workspace's credit


@dataclass(frozen=True, slots=True)
class Denial:
    """Which budget scope refused a reservation, its limit and what is used or reserved."""

    scope: str
    kind: str  # "budget" → 402, "rate" → 429
    limit: int
    used: int
    reserved: int
    requested: int
    unit: str
    resets_at: str | None = None


class BudgetExceededError(GatewayError):
    """A reservation was refused: the denial says which scope and by how much."""

    code = "budget_exceeded"

    def __init__(self, denial: Denial):
        if denial.scope == CREDIT_BALANCE:
            message = (
                f"Out of credits: the credit balance is {denial.limit} micro-dollars with "
                f"{denial.used + denial.reserved} pending or reserved, and this call may cost "
                f"up to {denial.requested}. Top up or upgrade the plan."
            )
        else:
            message = (
                f"The {denial.scope} limit is reached: {denial.used + denial.reserved} of "
                f"{denial.limit} {denial.unit} used or reserved, this call needs "
                f"{denial.requested}."
            )
        super().__init__(message)
        self.denial = denial

    @property
    def status(self) -> int:  # type: ignore[override]
        return 429 if self.denial.kind == "rate" else 402


class ProviderError(GatewayError):
    """A provider failed. `retryable` (timeouts, 5xx, 429) allows one retry and one fallback.

    Never carries a key or the provider's raw body: messages are written to logs and traces.
    """

    code = "provider_error"
    status = 502

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        provider: str = "",
        http_status: int | None = None,
        retry_after: float | None = None,
        kind: str = "error",  # error | timeout | connection | rate_limit | overloaded | auth | bad_request | dropped
    ):
        super().__init__(message)
        self.retryable = retryable
        self.provider = provider
        self.http_status = http_status
        self.retry_after = retry_after
        self.kind = kind


class ProviderUnavailableError(GatewayError):
    """Every route failed (after the retry and the fallback)."""

    code = "provider_unavailable"
    status = 503

    def __init__(self, message: str, *, attempts: tuple[str, ...] = ()):
        super().__init__(message)
        self.attempts = attempts


class StructuredOutputError(GatewayError):
    """The model's reply did not match the requested JSON Schema, even after one retry."""

    code = "structured_output_invalid"
    status = 502


class ServiceUnavailableError(GatewayError):
    """A service the gateway needs before calling a provider (Redis: budgets, cache) did not
    answer in time. Nothing was sent to a provider; trying again later is safe."""

    code = "service_unavailable"
    status = 503

    def __init__(self, part: str):
        super().__init__(f"The gateway's {part} did not answer in time; try again shortly.")
        self.part = part
