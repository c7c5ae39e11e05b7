"""DRF glue: every API error answers JSON `{"error": {"message", "type", "code", "param"}}`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ApplicationError


def error_body(
    message: str, *, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def _first_validation_error(detail: Any, prefix: str = "") -> tuple[str | None, str]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            return _first_validation_error(value, f"{prefix}.{name}".strip(".") if name else prefix)
    if isinstance(detail, list) and detail:
        return _first_validation_error(detail[0], prefix)
    return (prefix or None), str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map DRF and application errors to the JSON error shape; never an HTML page."""
    if isinstance(exc, ApplicationError):
        return Response(
            error_body(exc.message, type_="invalid_request_error", code=exc.code, param=exc.field),
            status=exc.status,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        param, message = _first_validation_error(exc.detail)
        text = f"{param}: {message}" if param else message
        response.data = error_body(text, type_="invalid_request_error", code="invalid", param=param)
    else:
        assert isinstance(exc, exceptions.APIException)
        type_ = (
            "authentication_error"
            if response.status_code == status.HTTP_401_UNAUTHORIZED
            else ("invalid_request_error")
        )
        response.data = error_body(str(exc.detail), type_=type_, code=exc.default_code)
    return response
