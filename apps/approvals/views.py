"""The approvals inbox and decisions on a workspace host (members; who may decide each action:
services.may_decide). Thin: each view calls one service or selector."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.common.errors import ApplicationError, NotFoundError
from apps.workspaces.http import WorkspaceRequest

from .models import PendingAction
from .selectors import actions_visible_to, open_count_for
from .services import action_decide, action_get, may_decide

Status = PendingAction.Status


def inbox(request: WorkspaceRequest) -> HttpResponse:
    membership = request.membership
    visible = actions_visible_to(membership=membership)
    pending = [
        {"action": a, "can_decide": may_decide(a, membership)}
        for a in visible.filter(status=Status.PENDING).order_by("expires_at", "pk")[:200]
    ]
    decided = [
        {"action": a, "can_decide": False}
        for a in visible.exclude(status=Status.PENDING).order_by("-decided_at", "-pk")[:50]
    ]
    context = {"pending": pending, "decided": decided}
    return render(request, "approvals/inbox.html", context)


def action_page(request: WorkspaceRequest, public_id: str) -> HttpResponse:
    action = _visible(request, public_id)
    context = {"action": action, "can_decide": may_decide(action, request.membership)}
    return render(request, "approvals/action.html", context)


@require_POST
def decide(request: WorkspaceRequest, public_id: str) -> HttpResponse:
    """Approve or reject; htmx gets the card back (with the refusal, if any), a plain form a
    redirect to the inbox with a message."""
    decision = request.POST.get("decision", "")
    error, status = "", 200
    action = _visible(request, public_id)
    if decision not in ("approve", "reject"):
        error = "Choose approve or reject."
    else:
        try:
            action = action_decide(
                workspace=request.workspace,
                membership=request.membership,
                public_id=public_id,
                approve=decision == "approve",
                note=request.POST.get("note", ""),
            )
        except ApplicationError as exc:
            error, status = exc.message, exc.status
            action = action_get(public_id=public_id)
    if error and status == 200:
        status = 400
    if request.headers.get("HX-Request"):
        context = {"action": action, "can_decide": may_decide(action, request.membership)}
        return render(request, "approvals/_action.html", {**context, "error": error}, status=status)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"{action.get_status_display()}: {action.tools_label}.")
    return redirect("approvals")


@require_GET
def count(request: WorkspaceRequest) -> JsonResponse:
    """The badge's number (fetched when a live event says something changed)."""
    return JsonResponse({"open": open_count_for(membership=request.membership)})


def _visible(request: WorkspaceRequest, public_id: str) -> PendingAction:
    """The action, if this person may see it; 404 otherwise (tampered and foreign ids too)."""
    try:
        action = action_get(public_id=public_id)
    except NotFoundError:
        raise Http404("No such action.") from None
    if not actions_visible_to(membership=request.membership).filter(pk=action.pk).exists():
        raise Http404("No such action.")
    return action
