"""Typed requests. The host and membership middleware (middleware.py) set the workspace and the
member's membership on every request; views declare which kind of request they serve instead
of reading untyped attributes."""

from __future__ import annotations

from django.http import HttpRequest

from .models import Membership, User, Workspace


class UserRequest(HttpRequest):
    """A logged-in user's request (views behind `login_required`)."""

    user: User


class HostRequest(HttpRequest):
    """Any request after the middleware: no workspace on public hosts; no membership for an
    anonymous visitor or on public hosts."""

    workspace: Workspace | None
    membership: Membership | None


class WorkspaceRequest(HttpRequest):
    """A request on a workspace host that passed the membership gate (every workspace view
    behind it): a logged-in member of `workspace`."""

    workspace: Workspace
    membership: Membership
    user: User
