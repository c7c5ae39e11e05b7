"""Autonomy rules, their change log, and pending actions: tenant-schema tables.

Agents and users are referenced by id (users live in the public schema; deleting an agent must
not rewrite the history of what it asked for)."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models


class Level(models.IntegerChoices):
    """How far an agent may go with a tool on its own (the playbook's five levels)."""

    SUGGEST = 1, "L1 · suggest"  # drafted for the person to run; never run by the agent
    UNDO = 2, "L2 · act with undo"  # runs; Undo is offered for the undo window
    CONFIRM = 3, "L3 · confirm each call"  # each call waits for a person's approval
    PLAN = 4, "L4 · confirm once per plan"  # one approval covers exactly one step's batch
    AUTONOMOUS = 5, "L5 · autonomous"  # runs; the audit log only


class Approvers(models.TextChoices):
    ADMINS = "admins", "Owners and admins"
    REQUESTER = "requester", "The person the agent acts for (or an admin)"


ANY_TOOL = "*"
# Tool flags a workspace default can be set for, strictest first when a tool has several.
FLAGS = ("destructive", "spends", "external", "writes", "read_only")


class AutonomyRule(models.Model):
    """A level set by an admin: for (agent, tool), (agent, any tool: `*`), or — with no agent —
    the workspace default for tools with a flag (`target` is then the flag's name)."""

    agent_id = models.BigIntegerField(null=True, blank=True)
    target = models.CharField(max_length=120)
    level = models.PositiveSmallIntegerField(choices=Level.choices)
    approvers = models.CharField(max_length=16, choices=Approvers.choices, default=Approvers.ADMINS)
    reason = models.CharField(max_length=500, blank=True)
    updated_by_id = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["agent_id", "target"],
                nulls_distinct=False,
                name="approvals_one_rule_per_target",
            )
        ]

    def __str__(self) -> str:
        return f"{self.agent_id or 'workspace'}:{self.target} L{self.level}"


class PolicyChange(models.Model):
    """Who changed which level when, from what to what, and why. Append-only (a trigger)."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    changed_by_id = models.BigIntegerField()
    changed_by_email = models.CharField(max_length=254)
    agent_id = models.BigIntegerField(null=True, blank=True)
    agent_name = models.CharField(max_length=100, blank=True)  # "" for a workspace default
    target = models.CharField(max_length=120)
    from_level = models.PositiveSmallIntegerField(null=True, blank=True)  # None: the default
    to_level = models.PositiveSmallIntegerField(null=True, blank=True)  # None: back to default
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.target}: {self.from_level} → {self.to_level}"


class AutonomySettings(models.Model):
    """The workspace's windows (one row, pk=1)."""

    undo_window_seconds = models.PositiveIntegerField(default=600)
    action_ttl_seconds = models.PositiveIntegerField(default=24 * 3600)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return "autonomy settings"


class PendingAction(models.Model):
    """A tool call (L3), a step's batch of calls (L4 plan) or a suggestion (L1) that waits for
    a person. The approval is bound to `args_hash`, the hash of the exact canonical calls: a
    different or modified call needs its own approval. `executed` lists the call hashes that
    ran (each once: claimed under this row's lock in the tool's own transaction)."""

    class Kind(models.TextChoices):
        CONFIRM = "confirm", "Confirm"
        PLAN = "plan", "Plan"
        SUGGESTION = "suggestion", "Suggestion"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        EXECUTED = "executed", "Executed"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    level = models.PositiveSmallIntegerField(choices=Level.choices)
    agent_id = models.BigIntegerField()
    agent_name = models.CharField(max_length=100)
    on_behalf_of_id = models.BigIntegerField()
    on_behalf_of_email = models.CharField(max_length=254)
    approvers = models.CharField(max_length=16, choices=Approvers.choices)
    # [{"call_id", "tool", "label", "args", "hash", "amount_micros"}]: what is approved, exactly.
    calls = models.JSONField(default=list)
    args_hash = models.CharField(max_length=64)
    executed = models.JSONField(default=list, blank=True)  # call hashes that ran
    rationale = models.TextField(blank=True)  # the model's words when it asked
    amount_micros = models.BigIntegerField(null=True, blank=True)  # spending tools
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    decided_by_id = models.BigIntegerField(null=True, blank=True)
    decided_by_email = models.CharField(max_length=254, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=500, blank=True)
    result_summary = models.CharField(max_length=500, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    # Where the agent waits: a chat answer ("chat", its message id), a run ("run", its id), or
    # nowhere ("" — an API or MCP client got "awaiting approval" and may call again).
    resume_kind = models.CharField(max_length=16, blank=True)
    resume_ref = models.CharField(max_length=64, blank=True)
    run_key = models.CharField(max_length=64)
    step = models.PositiveIntegerField(default=0)
    via = models.CharField(max_length=16, default="chat")
    conversation_id = models.BigIntegerField(null=True, blank=True)
    trace_id = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-pk"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["resume_kind", "resume_ref"], name="approvals_resume_idx"),
            models.Index(fields=["run_key", "step"], name="approvals_run_step_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.public_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.PENDING

    @property
    def tools_label(self) -> str:
        names = [c.get("label") or c["tool"] for c in self.calls]
        return names[0] if len(names) == 1 else f"a plan of {len(names)} calls"
