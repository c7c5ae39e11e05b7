"""One error type that services raise for problems a user can fix."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A request that cannot be carried out, with a message fit to show the user.

    `field` names the input at fault (forms attach the message to it; the API returns it as
    `param`); `status` is the HTTP status an API edge answers with.
    """

    status = 400
    code = "invalid_request"

    def __init__(
        self, message: str, *, field: str | None = None, extra: dict[str, Any] | None = None
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra or {}


class PermissionDeniedError(ApplicationError):
    status = 403
    code = "permission_denied"


class NotFoundError(ApplicationError):
    status = 404
    code = "not_found"
