"""URLs of a workspace host (<slug>.<BASE_DOMAIN>). Only members get past the middleware."""

from django.urls import include, path

from apps.common.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("accounts/", include("allauth.urls")),
    path("", include("apps.workspaces.urls")),
]
