"""Workspace host pages. The membership middleware has already let only members in."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.common.errors import ApplicationError, PermissionDeniedError

from .forms import InviteForm, RenameForm, RoleForm, attach_error
from .handoff import handoff_consume
from .models import Membership, Workspace
from .selectors import access_invitation, access_membership, invitation_list_open, membership_list
from .services import (
    invitation_create,
    invitation_revoke,
    membership_change_role,
    membership_remove,
    workspace_rename,
)


def _actor(request: HttpRequest) -> Membership:
    return request.membership  # type: ignore[attr-defined]


def _workspace(request: HttpRequest) -> Workspace:
    return request.workspace  # type: ignore[attr-defined]


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "workspaces/home.html")


def handoff(request: HttpRequest, token: str) -> HttpResponse:
    user = handoff_consume(token=token, workspace=_workspace(request))
    if user is None:
        messages.error(request, "That link has expired; log in to continue.")
        return redirect("account_login")
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return redirect("home")


def settings_page(
    request: HttpRequest,
    *,
    rename_form: RenameForm | None = None,
    invite_form: InviteForm | None = None,
    status: int = 200,
) -> HttpResponse:
    workspace = _workspace(request)
    context = {
        "rename_form": rename_form or RenameForm(initial={"name": workspace.name}),
        "invite_form": invite_form or InviteForm(),
        "members": membership_list(workspace=workspace),
        "invitations": invitation_list_open(workspace=workspace),
        "role_form": RoleForm(),
    }
    return render(request, "workspaces/settings.html", context, status=status)


@require_POST
def rename(request: HttpRequest) -> HttpResponse:
    form = RenameForm(request.POST)
    if form.is_valid():
        try:
            workspace_rename(
                workspace=_workspace(request), actor=_actor(request), name=form.cleaned_data["name"]
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
def invite(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation, _token = invitation_create(
                actor=_actor(request),
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
def invitation_revoke_view(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = access_invitation(workspace=_workspace(request), invitation_id=invitation_id)
    return _run(
        request,
        lambda: invitation_revoke(actor=_actor(request), invitation=invitation),
        f"Invitation for {invitation.email} withdrawn.",
    )


@require_POST
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    member = access_membership(workspace=_workspace(request), membership_id=membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose owner, admin or member.")
        return redirect("workspace_settings")
    return _run(
        request,
        lambda: membership_change_role(
            actor=_actor(request), membership=member, role=form.cleaned_data["role"]
        ),
        f"{member.user.email} is now {form.cleaned_data['role']}.",
    )


@require_POST
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    member = access_membership(workspace=_workspace(request), membership_id=membership_id)
    if member.pk != _actor(request).pk:
        return _run(
            request,
            lambda: membership_remove(actor=_actor(request), membership=member),
            f"{member.user.email} was removed.",
        )
    try:
        membership_remove(actor=_actor(request), membership=member)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("workspace_settings")
    # Not a member any more: every page of this host now answers 404.
    return redirect(f"{settings.SITE_URL}/")


def _run(request: HttpRequest, action: Callable[[], object], success: str) -> HttpResponse:
    try:
        action()
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success)
    return redirect("workspace_settings")
