"""Writes for workspaces, memberships and invitations. Every function is keyword-only and atomic."""

from __future__ import annotations

import secrets
from datetime import timedelta

import structlog
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils import timezone
from django_tenants.utils import schema_exists

from apps.common.errors import ApplicationError, NotFoundError, PermissionDeniedError

from .models import Domain, Invitation, Membership, PlanCode, Role, User, Workspace, hash_token
from .ports import provisioners
from .selectors import workspace_by_slug
from .validators import schema_name_for, system_slugs, validate_slug

log = structlog.get_logger(__name__)


def _check_slug(slug: str, *, system: bool = False) -> None:
    try:
        validate_slug(slug, system=system)
    except ValidationError as exc:
        raise ApplicationError(exc.messages[0], field="slug") from exc
    if Workspace.objects.filter(slug=slug).exists() or schema_exists(schema_name_for(slug)):
        raise ApplicationError(f"The address “{slug}” is taken; choose another.", field="slug")


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ApplicationError("Give the workspace a name.", field="name")
    if len(name) > 100:
        raise ApplicationError("Use at most 100 characters for the name.", field="name")
    return name


def workspace_create(
    *, name: str, slug: str, owner: User, plan: str = PlanCode.FREE, system: bool = False
) -> Workspace:
    """Create a workspace, its schema, its domain, the owner's membership and what the layers
    above provision for it (billing: the plan's credit for this month) — all or nothing.
    `system` lets the platform take one of the reserved system slugs (system_workspace_*).

    PostgreSQL DDL is transactional, so a failure at any step leaves no schema, row or membership.
    """
    name = _check_name(name)
    slug = slug.strip()
    _check_slug(slug, system=system)
    if plan not in PlanCode.values:
        raise ApplicationError(f"Unknown plan “{plan}”.", field="plan")
    try:
        with transaction.atomic():
            workspace = Workspace.objects.create(
                name=name,
                slug=slug,
                schema_name=schema_name_for(slug),
                created_by=owner,
                plan=plan,
            )
            Domain.objects.create(
                tenant=workspace, domain=f"{slug}.{settings.BASE_DOMAIN}", is_primary=True
            )
            Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
            for provision in provisioners():
                provision(workspace)
            workspace.create_schema(check_if_exists=False, verbosity=0)
    except IntegrityError as exc:
        # Two sign-ups racing for one slug: the unique constraint decides, the loser is told.
        raise ApplicationError(
            f"The address “{slug}” is taken; choose another.", field="slug"
        ) from exc
    log.info("workspace.created", workspace=slug, owner_id=owner.pk)
    return workspace


# Owner of the platform's own workspaces (evals, admin replays): an account that cannot log in.
SYSTEM_OWNER_EMAIL = "system@system.invalid"


class NotASystemWorkspaceError(ImproperlyConfigured):
    """A system slug is held by a workspace the platform did not create (an older deployment
    let sign-ups take it): nothing of the platform's may run there."""


def _system_owner() -> User:
    """The account that owns system workspaces; it has no usable password, so nobody logs in
    as it, and one that does have a password is not it."""
    owner = User.objects.filter(email=SYSTEM_OWNER_EMAIL).first()
    if owner is None:
        return User.objects.create_user(SYSTEM_OWNER_EMAIL, None)
    if owner.has_usable_password():
        raise NotASystemWorkspaceError(
            f"{SYSTEM_OWNER_EMAIL} is a person's account, not the system's."
        )
    return owner


def _systems(workspace: Workspace) -> Workspace:
    owner = workspace.created_by
    if owner is None or owner.email != SYSTEM_OWNER_EMAIL or owner.has_usable_password():
        raise NotASystemWorkspaceError(
            f"The workspace “{workspace.slug}” is not the platform's own: rename it (or set "
            "PLATFORM_WORKSPACE / EVALS_WORKSPACE to a free slug) before running system calls."
        )
    return workspace


def system_workspace_get_or_create(*, slug: str, name: str) -> Workspace:
    """The platform's own workspace `slug` (evals, admin replays), created on first use:
    enterprise plan, owned by SYSTEM_OWNER_EMAIL. Calls made there are billed to the platform.
    `slug` must be a reserved system slug, and a workspace found under it must be the system's
    (NotASystemWorkspaceError otherwise: never run platform calls in a customer's workspace)."""
    if slug not in system_slugs():
        raise ImproperlyConfigured(f"“{slug}” is not a system workspace slug (validators.py).")
    found = workspace_by_slug(slug=slug)
    if found is not None:
        return _systems(found)
    owner = _system_owner()
    try:
        # Created on the enterprise plan, so it starts with that plan's monthly credit.
        workspace = workspace_create(
            name=name, slug=slug, owner=owner, plan=PlanCode.ENTERPRISE, system=True
        )
    except ApplicationError:
        # Another process may have created it meanwhile (the slug's unique constraint decided);
        # otherwise the slug itself is invalid, which the caller's settings must fix.
        raced = workspace_by_slug(slug=slug)
        if raced is None:
            raise
        return _systems(raced)
    return workspace


def workspace_rename(*, workspace: Workspace, actor: Membership, name: str) -> Workspace:
    """Change the display name (the slug, and so the host, stays)."""
    _require_manager(actor)
    workspace.name = _check_name(name)
    workspace.save(update_fields=["name", "updated_at"])
    return workspace


def _require_manager(actor: Membership) -> None:
    if not actor.can_manage:
        raise PermissionDeniedError("Only owners and admins can manage this workspace.")


def membership_change_role(*, actor: Membership, membership: Membership, role: str) -> Membership:
    """Give a member another role. Only owners grant or take away ownership."""
    _require_manager(actor)
    if role not in Role.values:
        raise ApplicationError(f"Unknown role “{role}”.", field="role")
    if membership.workspace_id != actor.workspace_id:
        raise NotFoundError("No such member.")
    touches_owner = Role.OWNER in (role, membership.role)
    if touches_owner and actor.role != Role.OWNER:
        raise PermissionDeniedError("Only owners can grant or remove the owner role.")
    with transaction.atomic():
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if locked.role == Role.OWNER and role != Role.OWNER:
            _ensure_another_owner(locked)
        locked.role = role
        locked.save(update_fields=["role", "updated_at"])
    return locked


def membership_remove(*, actor: Membership, membership: Membership) -> None:
    """Remove a member (or leave, when actor and membership are the same person)."""
    if membership.workspace_id != actor.workspace_id:
        raise NotFoundError("No such member.")
    if membership.pk != actor.pk:
        _require_manager(actor)
        if membership.role == Role.OWNER and actor.role != Role.OWNER:
            raise PermissionDeniedError("Only owners can remove an owner.")
    with transaction.atomic():
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if locked.role == Role.OWNER:
            _ensure_another_owner(locked)
        locked.delete()


def _ensure_another_owner(membership: Membership) -> None:
    owners = Membership.objects.select_for_update().filter(
        workspace_id=membership.workspace_id, role=Role.OWNER
    )
    if not owners.exclude(pk=membership.pk).exists():
        raise ApplicationError(
            "A workspace needs at least one owner; make someone else owner first."
        )


def invitation_create(
    *, actor: Membership, email: str, role: str = Role.MEMBER
) -> tuple[Invitation, str]:
    """Invite `email` with `role`; return the invitation and the one-time token for the link.

    A new invitation replaces any earlier open one for the same address.
    """
    _require_manager(actor)
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ApplicationError("Enter a valid email address.", field="email") from exc
    if role not in Role.values:
        raise ApplicationError(f"Unknown role “{role}”.", field="role")
    if role == Role.OWNER and actor.role != Role.OWNER:
        raise PermissionDeniedError("Only owners can invite another owner.")
    workspace = actor.workspace
    if Membership.objects.filter(workspace=workspace, user__email__iexact=email).exists():
        raise ApplicationError(f"{email} is already a member.", field="email")
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        Invitation.objects.filter(
            workspace=workspace, email=email, accepted_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=now)
        invitation = Invitation.objects.create(
            workspace=workspace,
            email=email,
            role=role,
            token_hash=hash_token(token),
            invited_by=actor.user,
            expires_at=now + timedelta(days=settings.INVITATION_TTL_DAYS),
        )
        link = invitation_url(token)
        transaction.on_commit(lambda: _send_invitation(invitation, link))
    return invitation, token


def invitation_url(token: str) -> str:
    port = f":{settings.SITE_PORT}" if settings.SITE_PORT else ""
    return f"{settings.SITE_SCHEME}://{settings.BASE_DOMAIN}{port}/invitations/{token}/"


def _send_invitation(invitation: Invitation, link: str) -> None:
    context = {"invitation": invitation, "link": link}
    send_mail(
        subject=f"You are invited to {invitation.workspace.name}",
        message=render_to_string("workspaces/email/invitation.txt", context),
        from_email=None,
        recipient_list=[invitation.email],
    )


def invitation_revoke(*, actor: Membership, invitation: Invitation) -> None:
    _require_manager(actor)
    if invitation.workspace_id != actor.workspace_id:
        raise NotFoundError("No such invitation.")
    Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def invitation_accept(*, token: str, user: User) -> Membership:
    """Turn an invitation into a membership for `user`, exactly once."""
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .select_related("workspace")
            .filter(token_hash=hash_token(token))
            .first()
        )
        if invitation is None:
            raise NotFoundError("This invitation link is not valid.")
        if invitation.accepted_at is not None:
            raise ApplicationError("This invitation has already been used.")
        if invitation.revoked_at is not None:
            raise ApplicationError("This invitation was withdrawn; ask for a new one.")
        if invitation.expires_at <= timezone.now():
            raise ApplicationError("This invitation has expired; ask for a new one.")
        if invitation.email.lower() != user.email.lower():
            raise ApplicationError(
                f"This invitation is for {invitation.email}; you are signed in as {user.email}."
            )
        membership, created = Membership.objects.get_or_create(
            workspace=invitation.workspace, user=user, defaults={"role": invitation.role}
        )
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by", "updated_at"])
    log.info(
        "invitation.accepted",
        workspace=invitation.workspace.slug,
        user_id=user.pk,
        already_member=not created,
    )
    return membership


def legal_hold_set(
    *, workspaces: QuerySet[Workspace], hold: bool, actor_id: int
) -> list[Workspace]:
    """Place (`hold`) or lift the legal hold on `workspaces`; return those that changed.

    Under hold, retention deletes nothing of the workspace's traces until it is lifted.
    """
    changed = list(workspaces.exclude(legal_hold=hold))
    Workspace.objects.filter(pk__in=[w.pk for w in changed]).update(legal_hold=hold)
    for workspace in changed:
        workspace.legal_hold = hold
        log.info("workspaces.legal_hold", workspace=workspace.slug, hold=hold, actor_id=actor_id)
    return changed
