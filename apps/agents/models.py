"""Agents, conversations and messages: tenant-schema tables, so a workspace's chats live in its
own schema (docs/architecture.md, "Tenancy")."""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from apps.common.models import BaseModel


class Agent(BaseModel):
    """Who answers in a conversation. Every workspace has a default "Assistant"."""

    name = models.CharField(max_length=100)
    alias = models.CharField(max_length=32, default="smart")  # a gateway alias, never a model
    system_prompt = models.CharField(max_length=100, default="chat.system")  # a prompts/ name
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
            )
        ]

    def __str__(self) -> str:
        return self.name


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
    # Feedback on an answer: +1 / -1 and an optional comment (copied to the trace's score).
    rating = models.SmallIntegerField(null=True, blank=True)
    rating_comment = models.TextField(blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk}"
