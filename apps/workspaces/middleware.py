"""Host routing and the membership gate.

`WorkspaceHostMiddleware` picks the schema from the Host header: the public hosts get the public
schema and URLconf; `<slug>.<BASE_DOMAIN>` gets that workspace; any other host answers 404.
`WorkspaceMembershipMiddleware` then lets only members in: an anonymous visitor is sent to log in,
anyone else who is not a member gets 404 on every URL (never 403, never another workspace).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import set_urlconf
from django_tenants.middleware.main import TenantMainMiddleware

from apps.common.tenancy import use_public_schema

from .http import HostRequest
from .selectors import membership_get

# Paths an anonymous visitor of a workspace host may open: logging in, resetting a password.
ANONYMOUS_PATHS = ("/accounts/", "/static/", "/healthz")
# Paths a logged-in non-member may still use: logging out, to switch accounts.
NON_MEMBER_PATHS = ("/accounts/logout/", "/static/", "/healthz")


class WorkspaceHostMiddleware(TenantMainMiddleware):
    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        use_public_schema()
        hosted = cast(HostRequest, request)
        hostname = self.hostname_from_request(request)
        if hostname in settings.PUBLIC_HOSTS:
            request.tenant = connection.tenant  # type: ignore[attr-defined]
            hosted.workspace = None
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
            set_urlconf(request.urlconf)
            return None
        response = super().process_request(request)
        hosted.workspace = request.tenant  # type: ignore[attr-defined]
        return response


class WorkspaceMembershipMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        hosted = cast(HostRequest, request)
        workspace = getattr(request, "workspace", None)
        hosted.membership = None
        if workspace is not None:
            if not request.user.is_authenticated:
                if not request.path.startswith(ANONYMOUS_PATHS):
                    return redirect_to_login(request.get_full_path())
            else:
                membership = membership_get(workspace=workspace, user=request.user)
                if membership is None and not request.path.startswith(NON_MEMBER_PATHS):
                    # The 404 page must not tell an outsider whose workspace this is.
                    hosted.workspace = None
                    raise Http404("No such page.")
                hosted.membership = membership
        return self.get_response(request)
