"""URLs of the public host: landing, sign-up/login, workspaces, staff admin, API root, health."""

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from apps.billing.views_webhook import stripe_webhook
from apps.common.views import api_root, healthz
from apps.console.dashboard import traces_dashboard

# Staff log in through the product's login (allauth: its failed-login lockout per account and per
# address); the admin's own form checked any number of passwords.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("billing/stripe/webhook", stripe_webhook, name="stripe_webhook"),
    # Before admin/: the admin's catch-all would answer this path with a 404.
    path("admin/traces/dashboard/", traces_dashboard, name="traces_dashboard"),
    path("admin/billing/", include("apps.billing.admin_views")),  # finance overview, CSV export
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/", api_root, name="api_root"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    # The split view serves Swagger UI's start-up script as a file: the CSP allows no inline one.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api_schema"), name="api_docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api_schema"), name="api_redoc"),
    path("", include("apps.workspaces.urls_public")),
]
