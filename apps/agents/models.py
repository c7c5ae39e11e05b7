"""Agents, conversations and messages: tenant-schema tables, so a workspace's chats live in its
own schema (docs/architecture.md, "Tenancy")."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models

from apps.common.models import BaseModel


class Agent(BaseModel):
    """Who answers in a conversation. Every workspace has a default "Assistant" (no tools).

    An agent's tools are names in the code's tool registry (apps/agents/tools); its limits are
    budget scopes the gateway reserves atomically with every call (apps/agents/loop.py)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=60, blank=True)  # unique when set; "agent:<slug>" in /v1
    description = models.CharField(max_length=300, blank=True)
    # Added to the versioned system prompt: what workspace admins tell this agent.
    instructions = models.TextField(blank=True)
    alias = models.CharField(max_length=32, default="smart")  # a gateway alias, never a model
    system_prompt = models.CharField(max_length=100, default="chat.system")  # a prompts/ name
    tools = models.JSONField(default=list, blank=True)  # tool names: the allowlist
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    daily_spend_limit_micros = models.BigIntegerField(null=True, blank=True)  # None: no limit
    max_steps = models.PositiveSmallIntegerField(default=8)  # model calls per run
    max_run_cost_micros = models.BigIntegerField(null=True, blank=True)  # None: no cap
    is_default = models.BooleanField(default=False)
    # Users live in the public schema. A foreign key from a workspace's schema would make every
    # user deletion query tables that exist only in workspace schemas, so ids are kept instead.
    created_by_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="agents_one_default_agent",
            ),
            models.UniqueConstraint(
                fields=["slug"], condition=~models.Q(slug=""), name="agents_unique_slug"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Conversation(BaseModel):
    """One user's chat with an agent. Private to that user within the workspace."""

    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="conversations")
    user_id = models.BigIntegerField()  # a public-schema user (see Agent.created_by_id)
    title = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-updated_at", "-pk"]
        indexes: ClassVar[list[models.Index]] = [models.Index(fields=["user_id", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class Message(BaseModel):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        SYSTEM = "system"

    class Author(models.TextChoices):
        USER = "user"
        AGENT = "agent"
        SYSTEM = "system"
        API_KEY = "api_key"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        STOPPED = "stopped"
        ERROR = "error"
        WAITING = "waiting"  # an agent's answer parked until its held tool calls are decided

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    # Polymorphic authorship: who wrote it (a user's id, an agent's id, an API key's id).
    author_type = models.CharField(max_length=16, choices=Author.choices)
    author_id = models.CharField(max_length=64)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True)
    # A regenerated answer stays in the history, superseded by the newer one.
    superseded = models.BooleanField(default=False)
    # The gateway call that produced an answer.
    trace_id = models.UUIDField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    alias = models.CharField(max_length=32, blank=True)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=100, blank=True)
    offline = models.BooleanField(default=False)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0)
    # Grounded answers: the passages of the workspace's documents the model was given, as
    # apps/rag/grounding.py's Passage.as_dict() plus "cited" (whether the answer cites it).
    sources = models.JSONField(default=list, blank=True)
    # An agent's tool steps while answering: [{"step", "call_id", "name", "args", "status",
    # "summary"}] (args masked), shown as cards above the answer.
    steps = models.JSONField(default=list, blank=True)
    # A waiting answer's loop state, to resume from once its held calls are decided:
    # {"step", "messages": [the model conversation so far], "held": [tool calls]} (chat/resume.py).
    agent_state = models.JSONField(null=True, blank=True)
    # Feedback on an answer: +1 / -1 and an optional comment (copied to the trace's score).
    rating = models.SmallIntegerField(null=True, blank=True)
    rating_comment = models.TextField(blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk}"


class Task(BaseModel):
    """A workspace's to-do item: real work for agents (the task tools) and people (Tasks page)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"

    title = models.CharField(max_length=200)
    notes = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    due_on = models.DateField(null=True, blank=True)
    created_by_id = models.BigIntegerField()  # the person (or the person an agent acted for)
    created_by_agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering: ClassVar[list[str]] = ["status", "-created_at", "-pk"]

    def __str__(self) -> str:
        return self.title


class ToolAudit(models.Model):
    """One tool call an agent made or was refused: append-only (a trigger refuses updates).

    The idempotency key (run or answer, step, canonical args) makes a side effect happen once:
    a call whose key already has an `ok` row returns that row's stored result."""

    class Status(models.TextChoices):
        OK = "ok", "OK"
        DENIED = "denied", "Denied"
        INVALID = "invalid", "Invalid arguments"
        ERROR = "error", "Error"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        SUGGESTED = "suggested", "Suggested (L1)"
        REJECTED = "rejected", "Rejected by a person"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # No foreign key: deleting an agent must not rewrite its history (SET NULL is an UPDATE).
    agent_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    agent_name = models.CharField(max_length=100)
    on_behalf_of_id = models.BigIntegerField(null=True, blank=True)
    via = models.CharField(max_length=16, default="chat")  # chat | api | mcp | run
    tool = models.CharField(max_length=120, db_index=True)
    args = models.JSONField(default=dict)  # masked
    result = models.JSONField(null=True, blank=True)  # capped; replayed on a repeated key
    result_summary = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, db_index=True)
    reason = models.CharField(max_length=500, blank=True)  # why denied / what failed
    approval_id = models.BigIntegerField(null=True, blank=True)  # apps.approvals PendingAction
    autonomy_level = models.PositiveSmallIntegerField(null=True, blank=True)  # L1–L5
    undo_of = models.BigIntegerField(null=True, blank=True)  # the audit row this one undid
    trace_id = models.UUIDField(null=True, blank=True)
    conversation_id = models.BigIntegerField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=64, blank=True)
    cost_micros = models.BigIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-pk"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=models.Q(status="ok") & ~models.Q(idempotency_key=""),
                name="agents_audit_one_ok_per_key",
            ),
            models.UniqueConstraint(
                fields=["undo_of"],
                condition=models.Q(undo_of__isnull=False),
                name="agents_audit_one_undo_per_call",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tool} {self.status}"


class ExternalMcpServer(BaseModel):
    """An MCP server outside the platform whose tools this workspace's agents may call, as
    `<name>.<tool>` (apps/agents/mcp_remote). Its secret header value is encrypted at rest like
    BYOK keys (apps/common/crypto.py); only its last 4 characters are shown."""

    name = models.SlugField(max_length=40, unique=True)  # the tools' prefix: "<name>.<tool>"
    url = models.URLField(max_length=500)
    header_name = models.CharField(max_length=100, blank=True)
    encrypted_header_value = models.TextField(blank=True)
    header_value_last4 = models.CharField(max_length=4, blank=True)
    # The server's tools as last listed: [{"name", "title", "description", "input_schema",
    # "flags"}], so that listing them needs no network.
    tools = models.JSONField(default=list, blank=True)
    tools_refreshed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)  # of the last refresh
    created_by_id = models.BigIntegerField(null=True, blank=True)  # see Agent.created_by_id

    class Meta:
        ordering: ClassVar[list[str]] = ["name"]

    def __str__(self) -> str:
        return self.name


class AgentRun(models.Model):
    """A long agent run on a Celery worker (apps/agents/runs/): its task, caps, the loop's
    state after every step, the lease of the worker running it, and how it ended.

    The lease is fenced: each acquisition increments `lease_token`, and every state write is
    conditional on the token the writer holds, so a worker that lost its lease (it stalled past
    `lease_expires_at` and the janitor gave the run to another) can never write again."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting for approval"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        FAILED_BUDGET = "failed_budget_exceeded", "Stopped at its cost cap"
        FAILED_STEPS = "failed_step_limit", "Stopped at its step cap"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE: ClassVar[tuple[str, ...]] = ("queued", "running", "waiting")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="runs")
    task = models.TextField()
    started_by_id = models.BigIntegerField()  # the person the agent acts for
    via = models.CharField(max_length=16, default="browser")  # browser | api
    api_key_id = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=24, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    max_steps = models.PositiveSmallIntegerField()
    max_cost_micros = models.BigIntegerField(null=True, blank=True)  # None: no cap
    # The loop's state after the last stored step: {"step", "messages", "pending": [calls]}.
    state = models.JSONField(default=dict, blank=True)
    step = models.PositiveIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    result = models.TextField(blank=True)
    error = models.TextField(blank=True)
    # Billable outcome on success (billing's outcome flow), recorded once.
    outcome_kind = models.CharField(max_length=100, blank=True)
    outcome_price_micros = models.BigIntegerField(null=True, blank=True)
    outcome_recorded = models.BooleanField(default=False)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_token = models.BigIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)  # leases taken: 1 + resumes
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"run {self.public_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class RunEvent(models.Model):
    """The run's timeline: each model call, tool call, approval wait and ending, in order."""

    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True)
    step = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=16)  # model | tool | approval | status
    name = models.CharField(max_length=120, blank=True)
    status = models.CharField(max_length=24, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    cost_micros = models.BigIntegerField(default=0)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} {self.status}"
