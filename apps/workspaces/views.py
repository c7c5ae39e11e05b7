"""Workspace host pages. The membership middleware has already let only members in."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from apps.common.errors import ApplicationError, PermissionDeniedError

from .api_keys import access_api_key, api_key_create, api_key_list, api_key_revoke
from .forms import ApiKeyForm, InviteForm, RenameForm, RoleForm, attach_error
from .handoff import handoff_consume
from .http import HostRequest, WorkspaceRequest
from .models import ApiKey, User
from .selectors import access_invitation, access_membership, invitation_list_open, membership_list
from .services import (
    invitation_create,
    invitation_revoke,
    membership_change_role,
    membership_remove,
    workspace_rename,
)


def home(request: WorkspaceRequest) -> HttpResponse:
    return render(request, "workspaces/home.html")


def handoff(request: HostRequest, token: str) -> HttpResponse:
    # Reached before logging in (an /accounts/ path): the workspace is set, no membership.
    assert request.workspace is not None
    user = handoff_consume(token=token, workspace=request.workspace)
    if user is None:
        messages.error(request, "That link has expired; log in to continue.")
        return redirect("account_login")
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return redirect("home")


def settings_page(
    request: WorkspaceRequest,
    *,
    rename_form: RenameForm | None = None,
    invite_form: InviteForm | None = None,
    api_key_form: ApiKeyForm | None = None,
    new_api_key: tuple[ApiKey, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    workspace = request.workspace
    context: dict[str, object] = {
        "rename_form": rename_form or RenameForm(initial={"name": workspace.name}),
        "invite_form": invite_form or InviteForm(),
        "members": membership_list(workspace=workspace),
        "invitations": invitation_list_open(workspace=workspace),
        "role_form": RoleForm(),
    }
    if request.membership.can_manage:
        context["api_keys"] = api_key_list(workspace=workspace)
        context["api_key_form"] = api_key_form or ApiKeyForm()
        if new_api_key is not None:
            context["new_api_key"], context["new_api_key_secret"] = new_api_key
    return render(request, "workspaces/settings.html", context, status=status)


@require_POST
def rename(request: WorkspaceRequest) -> HttpResponse:
    form = RenameForm(request.POST)
    if form.is_valid():
        try:
            workspace_rename(
                workspace=request.workspace,
                actor=request.membership,
                name=form.cleaned_data["name"],
            )
        except PermissionDeniedError as exc:
            messages.error(request, exc.message)
            return settings_page(request, status=403)
        except ApplicationError as exc:
            attach_error(form, exc)
        else:
            messages.success(request, "Workspace renamed.")
            return redirect("workspace_settings")
    return settings_page(request, rename_form=form, status=400)


@require_POST
def invite(request: WorkspaceRequest) -> HttpResponse:
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation, _token = invitation_create(
                actor=request.membership,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
            )
        except PermissionDeniedError as exc:
            messages.error(request, exc.message)
            return settings_page(request, invite_form=form, status=403)
        except ApplicationError as exc:
            attach_error(form, exc)
        else:
            messages.success(request, f"Invitation sent to {invitation.email}.")
            return redirect("workspace_settings")
    return settings_page(request, invite_form=form, status=400)


@require_POST
def invitation_revoke_view(request: WorkspaceRequest, invitation_id: int) -> HttpResponse:
    invitation = access_invitation(workspace=request.workspace, invitation_id=invitation_id)
    return _run(
        request,
        lambda: invitation_revoke(actor=request.membership, invitation=invitation),
        f"Invitation for {invitation.email} withdrawn.",
    )


@require_POST
def member_role(request: WorkspaceRequest, membership_id: int) -> HttpResponse:
    member = access_membership(workspace=request.workspace, membership_id=membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose owner, admin or member.")
        return redirect("workspace_settings")
    return _run(
        request,
        lambda: membership_change_role(
            actor=request.membership, membership=member, role=form.cleaned_data["role"]
        ),
        f"{member.user.email} is now {form.cleaned_data['role']}.",
    )


@require_POST
def member_remove(request: WorkspaceRequest, membership_id: int) -> HttpResponse:
    member = access_membership(workspace=request.workspace, membership_id=membership_id)
    if member.pk != request.membership.pk:
        return _run(
            request,
            lambda: membership_remove(actor=request.membership, membership=member),
            f"{member.user.email} was removed.",
        )
    try:
        membership_remove(actor=request.membership, membership=member)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("workspace_settings")
    # Not a member any more: every page of this host now answers 404.
    return redirect(f"{settings.SITE_URL}/")


def _forbidden_unless_manager(request: WorkspaceRequest) -> HttpResponse | None:
    """The settings page with 403 for members: API keys are for owners and admins."""
    if request.membership.can_manage:
        return None
    messages.error(request, "Only owners and admins can manage API keys.")
    return settings_page(request, status=403)


@require_POST
def api_key_create_view(request: WorkspaceRequest) -> HttpResponse:
    if (denied := _forbidden_unless_manager(request)) is not None:
        return denied
    form = ApiKeyForm(request.POST)
    if form.is_valid():
        try:
            created = api_key_create(
                workspace=request.workspace,
                name=form.cleaned_data["name"],
                created_by=cast(User, request.user),
                scopes=form.cleaned_data["scopes"],
                expires_at=form.cleaned_data["expires_at"],
                rate_limit_per_minute=form.cleaned_data["rate_limit_per_minute"],
            )
        except ApplicationError as exc:
            attach_error(form, exc)
        else:
            # The secret is in this answer only: rendered here rather than redirected to (no
            # session or message store ever holds it), never cached, and the address becomes
            # the settings page again so that reloading it shows no secret and creates no key.
            response = settings_page(request, new_api_key=created, status=201)
            add_never_cache_headers(response)
            response["HX-Replace-Url"] = reverse("workspace_settings")
            return response
    return settings_page(request, api_key_form=form, status=400)


@require_POST
def api_key_revoke_view(request: WorkspaceRequest, api_key_id: int) -> HttpResponse:
    if (denied := _forbidden_unless_manager(request)) is not None:
        return denied
    api_key = access_api_key(workspace=request.workspace, api_key_id=api_key_id)
    api_key_revoke(api_key=api_key)
    messages.success(request, f"API key “{api_key.name}” ({api_key.prefix}…) revoked.")
    return redirect("workspace_settings")


def _run(request: WorkspaceRequest, action: Callable[[], object], success: str) -> HttpResponse:
    try:
        action()
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success)
    return redirect("workspace_settings")
