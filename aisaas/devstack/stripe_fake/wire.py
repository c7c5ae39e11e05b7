"""What the Stripe fake's API speaks: form decoding, ids, signatures, Stripe's error body and
parameter checks, in Stripe's shapes of API_VERSION."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from typing import Any
from urllib.parse import parse_qsl

API_VERSION = "2026-10-28.endive"

JSON = dict[str, Any]


class StripeFakeError(Exception):
    """An API request Stripe would refuse; rendered as Stripe's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "message": message, "param": param, "code": code}}


def new_id(prefix: str, length: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def sign(payload: str, secret: str, timestamp: int) -> str:
    """The Stripe-Signature header for `payload`, exactly as Stripe computes it."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def decode_form(body: str) -> JSON:
    """`a[b][0][c]=1` form pairs → nested dicts, with all-numeric keys turned into lists."""
    root: JSON = {}
    for key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=False):
        head, _, rest = key.partition("[")
        parts = [head, *(rest.rstrip("]").split("][") if rest else [])]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise StripeFakeError(400, f"Invalid parameter: {key}.", param=head)
            node = child
        node[parts[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def int_param(value: Any, param: str, *, minimum: int = 0) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise StripeFakeError(400, f"Invalid integer: {value}", param=param) from None
    if number < minimum:
        raise StripeFakeError(
            400, f"This value must be greater than or equal to {minimum}.", param=param
        )
    return number


def required_param(params: JSON, name: str) -> Any:
    value = params.get(name)
    if value in (None, "", {}, []):
        raise StripeFakeError(
            400, f"Missing required param: {name}.", param=name, code="parameter_missing"
        )
    return value


def metadata_param(params: JSON, name: str = "metadata") -> dict[str, str]:
    value = params.get(name) or {}
    if not isinstance(value, dict):
        raise StripeFakeError(400, "Invalid object", param=name)
    return {str(k): str(v) for k, v in value.items()}


def lookup(table: dict[str, JSON], object_id: str, kind: str) -> JSON:
    """The object `object_id` of `table`, or Stripe's 404 for a `kind` it does not know."""
    found = table.get(object_id)
    if found is None:
        raise StripeFakeError(
            404, f"No such {kind}: '{object_id}'", param="id", code="resource_missing"
        )
    return found


def public(obj: JSON) -> JSON:
    """`obj` as Stripe shows it: without the fake's own `_` keys."""
    return {key: value for key, value in obj.items() if not key.startswith("_")}
