"""Public host pages: landing, dashboard, create a workspace, open one, accept an invitation."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.common.errors import ApplicationError

from .forms import WorkspaceCreateForm, attach_error
from .handoff import handoff_token
from .http import UserRequest
from .models import Workspace
from .selectors import invitation_by_token, membership_get, workspace_list_for_user
from .services import invitation_accept, workspace_create


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return render(request, "public/landing.html")
    workspaces = workspace_list_for_user(user=request.user)
    return render(request, "public/dashboard.html", {"workspaces": workspaces})


@login_required
@require_http_methods(["GET", "POST"])
def workspace_new(request: UserRequest) -> HttpResponse:
    form = WorkspaceCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workspace = workspace_create(
                name=form.cleaned_data["name"],
                slug=form.cleaned_data["slug"],
                owner=request.user,
            )
        except ApplicationError as exc:
            attach_error(form, exc)
        else:
            messages.success(request, f"Workspace {workspace.name} is ready.")
            return redirect("workspace_open", slug=workspace.slug)
    return render(request, "public/workspace_new.html", {"form": form})


@login_required
def workspace_open(request: UserRequest, slug: str) -> HttpResponse:
    """Send a member to their workspace host, logged in there too."""
    user = request.user
    workspace = Workspace.objects.filter(slug=slug).first()
    if workspace is None or membership_get(workspace=workspace, user=user) is None:
        raise Http404("No such workspace.")
    token = handoff_token(user=user, workspace=workspace)
    return redirect(f"{workspace.url}accounts/handoff/{token}/")


@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    found = invitation_by_token(token=token)
    if found is None:
        raise Http404("This invitation link is not valid.")
    error = None
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect(f"/accounts/login/?next={request.path}")
        try:
            membership = invitation_accept(token=token, user=request.user)
        except ApplicationError as exc:
            error = exc.message
        else:
            messages.success(request, f"You joined {membership.workspace.name}.")
            return redirect("workspace_open", slug=membership.workspace.slug)
    return render(
        request,
        "public/invitation.html",
        {"invitation": found, "error": error},
        status=400 if error else 200,
    )
