"""Who among platform staff may see what of the traces (issue #8, item 6).

- `support` reads traces (masked and, on request, unmasked content), downloads and replays them;
- `finance` sees the call log (costs, tokens, models) but never prompt or answer content;
- superusers may do everything; other staff see neither.

Checked by group rather than by model permission: granting a finance user `view_llmtrace` by
mistake must still not open prompt content. The data migration gives the groups the model
view permissions too, so Django's admin index lists the models for them.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from apps.common.errors import PermissionDeniedError
from apps.workspaces.models import User

SUPPORT_GROUP = "support"
FINANCE_GROUP = "finance"


def _in_group(user: AbstractBaseUser | AnonymousUser, *names: str) -> bool:
    """Whether `user` is active staff and a superuser or in one of `names` (the groups are read
    once per user object: the admin asks several times per page)."""
    if not isinstance(user, User) or not (user.is_active and user.is_staff):
        return False
    if user.is_superuser:
        return True
    groups: set[str] | None = user.__dict__.get("_trace_groups")
    if groups is None:
        groups = user.__dict__["_trace_groups"] = set(user.groups.values_list("name", flat=True))
    return bool(groups.intersection(names))


def can_read_trace_content(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Prompts, answers, tool calls, downloads and replays: support and superusers."""
    return _in_group(user, SUPPORT_GROUP)


def can_read_call_costs(user: AbstractBaseUser | AnonymousUser) -> bool:
    """The call log's metadata and costs: support, finance and superusers."""
    return _in_group(user, SUPPORT_GROUP, FINANCE_GROUP)


def require_trace_content(user: AbstractBaseUser | AnonymousUser) -> None:
    """Raise PermissionDeniedError unless `user` may read trace content."""
    if not can_read_trace_content(user):
        raise PermissionDeniedError("Only support staff can open trace content.")
