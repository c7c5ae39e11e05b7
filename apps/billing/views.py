"""The workspace billing page (owners and admins): balance, plan, subscription and upgrades,
top-up, usage by feature, ledger history and outcomes with their dispute form. Payments happen
on Stripe's Checkout and the subscription is managed in Stripe's billing portal: these views
only open them (apps.billing.checkout, apps.billing.portal) and send the browser there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.common.errors import ApplicationError, PermissionDeniedError
from apps.workspaces.forms import attach_error
from apps.workspaces.http import WorkspaceRequest
from apps.workspaces.models import User

from .checkout import checkout_subscription_start, checkout_topup_start
from .forms import DisputeForm, TopUpForm, UpgradeForm
from .ledger import balance_get
from .outcomes import outcome_dispute
from .portal import billing_portal_start
from .selectors import access_outcome, ledger_history, outcome_list, plan_choice, usage_by_feature

LEDGER_PAGE_SIZE = 25
OUTCOMES_SHOWN = 50
CHECKOUT_BANNERS = {
    "success": ("success", "Payment received — your credits appear in a few seconds."),
    "cancelled": ("info", "Checkout was cancelled; nothing was charged."),
}
PORTAL_BANNER = (
    "info",
    "Back from the billing portal — changes to the subscription show here in a few seconds.",
)


def _refused(request: WorkspaceRequest) -> HttpResponse:
    return render(request, "billing/refused.html", status=403)


@dataclass(frozen=True)
class DisputeRefused:
    """A dispute that was refused: shown at its outcome's form with the reason as typed."""

    outcome_id: int
    reason: str
    message: str


def billing_page(
    request: WorkspaceRequest,
    *,
    topup_form: TopUpForm | None = None,
    dispute_refused: DisputeRefused | None = None,
    status: int = 200,
) -> HttpResponse:
    if not request.membership.can_manage:
        return _refused(request)
    workspace = request.workspace
    chart = usage_by_feature(workspace=workspace)
    ledger = Paginator(ledger_history(workspace=workspace), LEDGER_PAGE_SIZE)
    context = {
        "balance_micros": balance_get(workspace_id=workspace.pk).balance_micros,
        "plans": plan_choice(workspace=workspace),
        "topup_form": topup_form or TopUpForm(),
        "chart": chart,
        "chart_data": chart.chartjs(),
        "ledger_page": ledger.get_page(request.GET.get("page")),
        "outcomes": outcome_list(workspace=workspace)[:OUTCOMES_SHOWN],
        "dispute_form": DisputeForm(),
        "dispute_refused": dispute_refused,
        "now": timezone.now(),
        "checkout_banner": CHECKOUT_BANNERS.get(request.GET.get("checkout", ""))
        or (PORTAL_BANNER if request.GET.get("portal") == "return" else None),
    }
    return render(request, "billing/billing.html", context, status=status)


def _billing_refused(request: WorkspaceRequest, exc: ApplicationError) -> HttpResponse:
    if isinstance(exc, PermissionDeniedError):
        return _refused(request)
    messages.error(request, exc.message)
    return billing_page(request, status=exc.status)


@require_POST
def topup(request: WorkspaceRequest) -> HttpResponse:
    if not request.membership.can_manage:
        return _refused(request)
    form = TopUpForm(request.POST)
    if form.is_valid():
        try:
            url = checkout_topup_start(
                workspace=request.workspace,
                user=cast(User, request.user),
                usd=form.cleaned_data["usd"],
            )
        except PermissionDeniedError:
            return _refused(request)
        except ApplicationError as exc:
            # Refused amounts (400) and an unreachable payment provider (503) alike.
            attach_error(form, exc)
            return billing_page(request, topup_form=form, status=exc.status)
        return redirect(url)
    return billing_page(request, topup_form=form, status=400)


@require_POST
def upgrade(request: WorkspaceRequest) -> HttpResponse:
    if not request.membership.can_manage:
        return _refused(request)
    form = UpgradeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the plans below.")
        return billing_page(request, status=400)
    try:
        url = checkout_subscription_start(
            workspace=request.workspace,
            user=cast(User, request.user),
            plan_code=form.cleaned_data["plan"],
        )
    except ApplicationError as exc:
        return _billing_refused(request, exc)
    return redirect(url)


@require_POST
def manage_subscription(request: WorkspaceRequest) -> HttpResponse:
    """Send an owner or admin to Stripe's billing portal (cancel, resume, invoices, card)."""
    if not request.membership.can_manage:
        return _refused(request)
    try:
        url = billing_portal_start(workspace=request.workspace, user=cast(User, request.user))
    except ApplicationError as exc:
        return _billing_refused(request, exc)
    return redirect(url)


@require_POST
def dispute(request: WorkspaceRequest, outcome_id: int) -> HttpResponse:
    if not request.membership.can_manage:
        return _refused(request)
    outcome = access_outcome(workspace=request.workspace, outcome_id=outcome_id)
    form = DisputeForm(request.POST)
    typed = request.POST.get("reason", "")
    if not form.is_valid():
        message = " ".join(str(error) for error in form.errors["reason"])
        refused = DisputeRefused(outcome_id=outcome.pk, reason=typed, message=message)
        return billing_page(request, dispute_refused=refused, status=400)
    try:
        outcome_dispute(
            outcome=outcome, membership=request.membership, reason=form.cleaned_data["reason"]
        )
    except PermissionDeniedError:
        return _refused(request)
    except ApplicationError as exc:
        refused = DisputeRefused(outcome_id=outcome.pk, reason=typed, message=exc.message)
        return billing_page(request, dispute_refused=refused, status=exc.status)
    messages.success(request, f"Outcome “{outcome.kind}” disputed; staff will review it.")
    return redirect(reverse("billing") + "#outcomes")
