"""URLs of a workspace host (<slug>.<BASE_DOMAIN>). Only members get past the middleware."""

from django.conf import settings
from django.urls import include, path
from django.views.generic import RedirectView

from apps.common.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # Sign-up lives on the public host; the login page's "sign up" link goes there.
    path("accounts/signup/", RedirectView.as_view(url=f"{settings.SITE_URL}/accounts/signup/")),
    path("accounts/", include("allauth.urls")),
    path("", include("apps.agents.chat.urls")),
    path("", include("apps.agents.urls")),
    path("", include("apps.approvals.urls")),
    path("", include("apps.rag.urls")),
    path("", include("apps.workspaces.urls")),
    path("", include("apps.billing.urls")),
]
