from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from .health import health_report


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 with every part "ok" (pgvector: its version); 503 naming the failing part otherwise."""
    healthy, report = health_report()
    if not healthy:
        report["failing"] = ",".join(k for k, v in report.items() if v.startswith("error"))
    return JsonResponse(report, status=200 if healthy else 503)


@extend_schema(exclude=True)
@api_view(["GET"])
@permission_classes([AllowAny])
def api_root(request: Request) -> Response:
    return Response(
        {
            "schema": request.build_absolute_uri(reverse("api_schema")),
            "docs": request.build_absolute_uri(reverse("api_docs")),
        }
    )
