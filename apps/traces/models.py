"""llm_call_log (metadata and cost, kept indefinitely) and llm_trace (masked content).

Public schema: support and finance read across workspaces; every row carries `workspace` and
every query filters on it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models


class CallStatus(models.TextChoices):
    OK = "ok", "OK"
    ERROR = "error", "Error"
    CANCELLED = "cancelled", "Cancelled"
    TRUNCATED = "truncated", "Truncated"


class LlmCallLog(models.Model):
    """One row per gateway call: who, what, how it went, what it cost."""

    call_id = models.UUIDField(unique=True)
    request_id = models.CharField(max_length=64, db_index=True)
    trace_id = models.UUIDField(db_index=True)
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    actor_type = models.CharField(max_length=16)
    actor_id = models.CharField(max_length=64)
    feature = models.CharField(max_length=64)
    alias = models.CharField(max_length=32)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=16, choices=CallStatus.choices)
    finish_reason = models.CharField(max_length=32, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0)
    cached = models.BooleanField(default=False)
    fallback_used = models.BooleanField(default=False)
    byok = models.BooleanField(default=False)
    offline = models.BooleanField(default=False)
    duration_ms = models.FloatField()
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    prompt_name = models.CharField(max_length=100, blank=True)
    prompt_version = models.CharField(max_length=32, blank=True)
    price_version = models.CharField(max_length=64, blank=True)
    attempts = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "llm_call_log"
        ordering: ClassVar[list[str]] = ["-created_at"]
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=["workspace", "created_at"], name="llm_call_log_ws_time"),
            models.Index(
                fields=["workspace", "feature", "created_at"], name="llm_call_log_ws_feature"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.alias} {self.status} {self.call_id}"


class LlmTrace(models.Model):
    """The replayable content of a call, masked before storage (emails, phones, cards, keys)."""

    trace_id = models.UUIDField(unique=True)
    call = models.OneToOneField(LlmCallLog, on_delete=models.CASCADE, related_name="trace")
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    messages = models.JSONField(default=list)
    tools = models.JSONField(default=list, blank=True)
    response_format = models.JSONField(null=True, blank=True)
    params = models.JSONField(default=dict, blank=True)
    response = models.TextField(blank=True)
    tool_calls = models.JSONField(default=list, blank=True)
    thinking = models.TextField(blank=True)
    safety_signals = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    masked = models.BooleanField(default=True)
    score = models.SmallIntegerField(null=True, blank=True)  # thumbs: +1 / -1 (feedback later)
    score_comment = models.TextField(blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "llm_trace"
        ordering: ClassVar[list[str]] = ["-created_at"]
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=["workspace", "created_at"], name="llm_trace_ws_time"),
        ]

    def __str__(self) -> str:
        return f"trace {self.trace_id}"
