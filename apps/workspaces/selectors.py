"""Reads for workspaces and memberships. `access_*` gates answer 404 for missing and forbidden alike."""

from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet
from django.http import Http404

from apps.common.tenancy import current_schema

from .models import Invitation, Membership, User, Workspace, hash_token


def workspace_by_slug(*, slug: str) -> Workspace | None:
    """The workspace named `slug` (never the public schema's row), or None."""
    return Workspace.objects.tenants().filter(slug=slug).first()


def workspace_list_for_user(*, user: User) -> QuerySet[Workspace]:
    """The workspaces `user` is a member of, by name."""
    return Workspace.objects.filter(memberships__user=user).order_by("name")


def membership_get(*, workspace: Workspace, user: User) -> Membership | None:
    if not user.is_authenticated:
        return None
    return (
        Membership.objects.select_related("workspace", "user")
        .filter(workspace=workspace, user=user)
        .first()
    )


def membership_list(*, workspace: Workspace) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(workspace=workspace)
        .select_related("user")
        .order_by("user__email")
    )


def access_membership(*, workspace: Workspace, membership_id: int) -> Membership:
    """A membership of `workspace` by id, or 404."""
    found = membership_list(workspace=workspace).filter(pk=membership_id).first()
    if found is None:
        raise Http404("No such member.")
    return found


def invitation_list_open(*, workspace: Workspace) -> QuerySet[Invitation]:
    return Invitation.objects.filter(
        workspace=workspace, accepted_at__isnull=True, revoked_at__isnull=True
    ).select_related("invited_by")


def access_invitation(*, workspace: Workspace, invitation_id: int) -> Invitation:
    found = Invitation.objects.filter(workspace=workspace, pk=invitation_id).first()
    if found is None:
        raise Http404("No such invitation.")
    return found


def invitation_by_token(*, token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("workspace", "invited_by")
        .filter(token_hash=hash_token(token))
        .first()
    )


def workspace_current() -> Workspace:
    """The workspace whose schema the connection uses (a Celery task or `schema_context`
    entered it). Raises RuntimeError in the public schema."""
    tenant = connection.tenant  # type: ignore[attr-defined]  # django-tenants adds it
    if isinstance(tenant, Workspace) and not tenant.is_public:
        return tenant
    found = Workspace.objects.tenants().filter(schema_name=current_schema()).first()
    if found is None:
        raise RuntimeError("No workspace schema is active on this connection.")
    return found
