"""Idempotent demo data: acme and globex, an owner and a member in each, support and finance staff."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from apps.agents.models import Agent
from apps.billing.ledger import usd_to_micros
from apps.billing.outcomes import outcome_record
from apps.billing.plans import all_workspaces_grant_monthly
from apps.workspaces.models import Membership, Role, User, Workspace
from apps.workspaces.services import workspace_create

DEMO_PASSWORD = "demo-password-2026"
WORKSPACES = {"acme": "Acme Inc.", "globex": "Globex Corporation"}
STAFF = {"support": "support@aisaas.test", "finance": "finance@aisaas.test"}
# One billable outcome for acme, pending in its dispute window: the billing page shows how an
# outcome is listed and disputed (API clients record theirs the same way, by external id).
DEMO_OUTCOME = {"kind": "Ticket resolved", "usd": "0.50", "external_id": "demo-ticket-1001"}
DEMO_AGENT = {
    "name": "Task helper",
    "slug": "task-helper",
    "description": "Lists, creates, updates and deletes the workspace's tasks.",
    "tools": ["list_tasks", "create_task", "update_task", "delete_task"],
    "max_steps": 20,
}


def _user(email: str, **extra: Any) -> User:
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email, DEMO_PASSWORD, **extra)
    return user


class Command(BaseCommand):
    help = "Create (or keep) the demo workspaces and users, then print URLs and logins."

    def handle(self, *args: Any, **options: Any) -> None:
        logins: list[tuple[str, str, str]] = []
        for slug, name in WORKSPACES.items():
            owner = _user(f"owner@{slug}.test", name=f"{name} Owner")
            member = _user(f"member@{slug}.test", name=f"{name} Member")
            workspace = Workspace.objects.filter(slug=slug).first() or workspace_create(
                name=name, slug=slug, owner=owner
            )
            Membership.objects.get_or_create(
                workspace=workspace, user=member, defaults={"role": Role.MEMBER}
            )
            if slug == "acme":
                with schema_context(workspace.schema_name):
                    # An agent that acts on the Tasks page (delete_task waits for approval by
                    # default): chat with it, or run it in the background on Runs.
                    Agent.objects.get_or_create(
                        slug=DEMO_AGENT["slug"],
                        defaults={**DEMO_AGENT, "created_by_id": owner.pk},
                    )
                outcome_record(
                    workspace=workspace,
                    kind=DEMO_OUTCOME["kind"],
                    price_micros=usd_to_micros(DEMO_OUTCOME["usd"]),
                    external_id=DEMO_OUTCOME["external_id"],
                )
            logins += [
                (owner.email, "owner", workspace.url),
                (member.email, "member", workspace.url),
            ]
        # This month's plan credit for workspaces made before billing existed (idempotent; beat
        # does the same hourly).
        all_workspaces_grant_monthly()
        admin = _user("admin@aisaas.test", is_staff=True, is_superuser=True)
        logins.append((admin.email, "superuser", f"{settings.SITE_URL}/admin/"))
        for group_name, email in STAFF.items():
            staff = _user(email, is_staff=True)
            staff.groups.add(Group.objects.get(name=group_name))
            logins.append((staff.email, f"staff: {group_name}", f"{settings.SITE_URL}/admin/"))
        self.stdout.write(
            self.style.SUCCESS("Demo data ready. Password for every login: " + DEMO_PASSWORD)
        )
        for email, role, where in logins:
            self.stdout.write(f"  {email:<24} {role:<16} {where}")
