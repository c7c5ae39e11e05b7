"""Error answers: `ApiError` (OpenAI's error shape), and the answer for each gateway or
service error."""

from __future__ import annotations

import calendar
import time
from typing import Any

from apps.common.errors import ApplicationError
from apps.llm.services import (
    BudgetExceededError,
    GatewayError,
    InvalidRequestError,
    ProviderError,
    ProviderUnavailableError,
    ServiceUnavailableError,
    UnknownAliasError,
)


class ApiError(Exception):
    """An answer other than 200, in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status,
            message,
            type_,
            code,
            param,
        )
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }


def gateway_error(exc: GatewayError) -> ApiError:
    """The HTTP answer for a gateway error (the message is safe to show: no keys, no bodies)."""
    if isinstance(exc, UnknownAliasError):
        return ApiError(404, exc.message, code="model_not_found", param="model")
    if isinstance(exc, InvalidRequestError):
        param = "model" if exc.field == "alias" else exc.field
        return ApiError(400, exc.message, code=exc.code, param=param)
    if isinstance(exc, BudgetExceededError):
        denial = exc.denial
        if denial.kind == "rate":
            return ApiError(
                429,
                exc.message,
                type_="rate_limit_error",
                code=f"{denial.scope}_exceeded",
                headers={"retry-after": str(retry_after(denial.resets_at))},
            )
        # OpenAI's answer for an exhausted quota: 429 `insufficient_quota`, which every SDK
        # maps to its typed rate-limit error; `x-should-retry: false` stops the openai SDKs
        # (and those built on them) from retrying what waiting a few seconds cannot fix.
        # README, "Quota errors: 429, not 402", says why not 402.
        return ApiError(
            429,
            exc.message,
            type_="insufficient_quota",
            code="insufficient_quota",
            headers={"x-should-retry": "false", "x-aisaas-quota-scope": denial.scope},
        )
    if isinstance(exc, ProviderUnavailableError | ServiceUnavailableError):
        return ApiError(503, exc.message, type_="api_error", code=exc.code)
    if isinstance(exc, ProviderError):
        return ApiError(502, exc.message, type_="api_error", code=exc.code)
    return ApiError(502, exc.message, type_="api_error", code=exc.code)


def application_error(exc: ApplicationError, *, params: dict[str, str] | None = None) -> ApiError:
    """The HTTP answer for a service's ApplicationError: its status and code, its field as
    `param` (renamed through `params` where the API names the input differently)."""
    param = (params or {}).get(exc.field or "", exc.field)
    type_ = "permission_error" if exc.status == 403 else "invalid_request_error"
    return ApiError(exc.status, exc.message, type_=type_, code=exc.code, param=param)


def retry_after(resets_at: str | None) -> int:
    """Whole seconds until `resets_at` (ISO, UTC), at least 1."""
    if not resets_at:
        return 1
    reset = calendar.timegm(time.strptime(resets_at, "%Y-%m-%dT%H:%M:%SZ"))
    return max(1, int(reset - time.time()) + 1)
