"""Turn an HTTP-level failure into the one `ProviderError`, the same way for every SDK adapter.

Messages are built here from the status, the vendor's error type and its short explanation, never
from the SDK's own message (it embeds the whole response body, and OpenAI's 401 echoes part of
the key), and never from the request.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from ..errors import ProviderError

# Key-shaped strings a vendor might echo back (sk-…, sk-ant-…, long opaque tokens).
_KEYLIKE = re.compile(r"\b(?:sk|pk|key|ak)[-_][A-Za-z0-9_\-*]{6,}|\b[A-Za-z0-9]{32,}\b")
_MAX_DETAIL = 200


def status_error(
    *,
    provider: str,
    status: int,
    headers: Mapping[str, str] | None,
    error_type: str | None,
    detail: str | None,
    secret: str,
) -> ProviderError:
    """A vendor answered with an error status (or an error event inside a stream)."""
    retry_after = parse_retry_after(headers) if headers is not None else None
    kind, retryable = _classify(status, error_type)
    if kind == "auth":
        # The vendor's explanation of a rejected key can quote the key: say nothing of it.
        message = f"{provider} rejected the API key (HTTP {status})."
    else:
        label = f"HTTP {status}" if status >= 300 else "stream error"
        message = f"{provider} failed: {label}" + (f" {error_type}" if error_type else "")
        if detail:
            message += f": {redact(detail, secret)}"
    return ProviderError(
        message,
        retryable=retryable,
        provider=provider,
        http_status=status if status >= 300 else None,
        retry_after=retry_after,
        kind=kind,
    )


def transport_error(*, provider: str, timed_out: bool, mid_stream: bool) -> ProviderError:
    """No (complete) answer arrived: a timeout, a refused connection, or a stream cut short."""
    if timed_out:
        where = "while streaming" if mid_stream else "before answering"
        return ProviderError(
            f"{provider} timed out {where}.", retryable=True, provider=provider, kind="timeout"
        )
    if mid_stream:
        return ProviderError(
            f"{provider} dropped the connection mid-stream.",
            retryable=True,
            provider=provider,
            kind="dropped",
        )
    return ProviderError(
        f"{provider} could not be reached.", retryable=True, provider=provider, kind="connection"
    )


def unexpected_error(*, provider: str, exc: BaseException) -> ProviderError:
    """The SDK failed in a way we do not classify (e.g. a reply it could not parse)."""
    return ProviderError(
        f"{provider} returned an unusable reply ({type(exc).__name__}).",
        retryable=True,
        provider=provider,
    )


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(float(ms) / 1000, 0.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(float(value), 0.0)
        except ValueError:
            return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def redact(text: str, secret: str) -> str:
    """Vendor text made safe for logs: no key (whole or key-shaped), bounded length."""
    if secret:
        text = text.replace(secret, "[redacted]")
    text = _KEYLIKE.sub("[redacted]", text)
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _classify(status: int, error_type: str | None) -> tuple[str, bool]:
    """(kind, retryable). A 2xx status means an error event inside a stream: use its type."""
    if status < 300:
        status = {
            "overloaded_error": 529,
            "rate_limit_error": 429,
            "authentication_error": 401,
            "permission_error": 403,
            "invalid_request_error": 400,
        }.get(error_type or "", 500)
    if status in (401, 403):
        return "auth", False
    if status == 429:
        return "rate_limit", True
    if status in (529, 503) or error_type == "overloaded_error":
        return "overloaded", True
    if status in (408, 504):
        return "timeout", True
    if status >= 500 or status == 409:
        return "error", True
    return "bad_request", False


def tool_arguments(provider: str, raw: str) -> dict[str, Any]:
    """A tool call's JSON arguments; anything but an object is a (retryable) provider fault."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ProviderError(
            f"{provider} returned tool arguments that are not a JSON object.",
            retryable=True,
            provider=provider,
        )
    return value
