from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.workspaces.models import Membership

from .models import Approvers, PendingAction

Status = PendingAction.Status


def _decidable_by(membership: Membership) -> Q:
    if membership.can_manage:
        return Q()
    mine = Q(on_behalf_of_id=membership.user_id)
    return mine & (Q(approvers=Approvers.REQUESTER) | Q(kind=PendingAction.Kind.SUGGESTION))


def open_count_for(*, membership: Membership) -> int:
    """Pending actions this person may decide."""
    return PendingAction.objects.filter(_decidable_by(membership), status=Status.PENDING).count()


def actions_visible_to(*, membership: Membership) -> QuerySet[PendingAction]:
    """Owners and admins see every action; members those they may decide and those asked
    for on their behalf."""
    if membership.can_manage:
        return PendingAction.objects.all()
    return PendingAction.objects.filter(on_behalf_of_id=membership.user_id)


def actions_for_conversation(*, conversation_id: int) -> dict[int, PendingAction]:
    return {
        action.pk: action
        for action in PendingAction.objects.filter(conversation_id=conversation_id)
    }
