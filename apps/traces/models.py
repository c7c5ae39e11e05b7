"""llm_call_log (metadata and cost, kept indefinitely) and llm_trace (masked content).

Public schema: support and finance read across workspaces; every row carries `workspace` and
every query filters on it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


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


class LlmTraceRaw(models.Model):
    """The unmasked content of a call, kept briefly (the plan's raw retention, default 7 days)
    for support to replay exactly what was sent; the masked LlmTrace outlives it."""

    trace = models.OneToOneField(
        LlmTrace, on_delete=models.CASCADE, primary_key=True, related_name="raw"
    )
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    messages = models.JSONField(default=list)
    response = models.TextField(blank=True)
    tool_calls = models.JSONField(default=list, blank=True)
    thinking = models.TextField(blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "llm_trace_raw"

    def __str__(self) -> str:
        return f"raw {self.trace_id}"


class TraceAccessAction(models.TextChoices):
    VIEW = "view", "Viewed"
    VIEW_RAW = "view_raw", "Viewed unmasked content"
    DOWNLOAD = "download", "Downloaded"
    REPLAY = "replay", "Replayed"


class TraceAccess(models.Model):
    """Audit: every staff view, download or replay of a trace (who, what, when)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    user_email = models.EmailField()  # kept when the user is deleted
    action = models.CharField(max_length=16, choices=TraceAccessAction.choices)
    trace_id = models.UUIDField(db_index=True)
    workspace = models.ForeignKey(
        "workspaces.Workspace", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "trace_access"
        ordering: ClassVar[list[str]] = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.user_email} {self.action} {self.trace_id}"


# Latency histogram bucket upper bounds in milliseconds (log-spaced, ~1.6x apart). Bucket i counts
# durations in [LATENCY_BOUNDS_MS[i-1], LATENCY_BOUNDS_MS[i]); the last bucket is open-ended.
# Changing these invalidates stored histograms: rebuild the rollups after.
LATENCY_BOUNDS_MS: tuple[int, ...] = (
    10, 15, 25, 40, 60, 100, 150, 250, 400, 600, 1_000, 1_500, 2_500, 4_000, 6_000,
    10_000, 15_000, 25_000, 40_000, 60_000, 100_000, 150_000, 250_000,
)  # fmt: skip
LATENCY_BUCKETS = len(LATENCY_BOUNDS_MS) + 1


def _empty_histogram() -> list[int]:
    return [0] * LATENCY_BUCKETS


class CallRollup(models.Model):
    """Aggregates of llm_call_log per bucket and (workspace, feature, alias, provider, model),
    maintained as call records are stored, so dashboards never scan the call log.

    The latency histogram and `latency_ms_sum` cover calls that were not cache hits (a hit's
    latency says nothing about the model); thumbs count rated traces of the bucket's calls.
    """

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    feature = models.CharField(max_length=64)
    alias = models.CharField(max_length=32)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=128, blank=True)
    calls = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    cancelled = models.BigIntegerField(default=0)
    truncated = models.BigIntegerField(default=0)
    cache_hits = models.BigIntegerField(default=0)
    fallbacks = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0)
    latency_ms_sum = models.FloatField(default=0)
    latency_histogram = ArrayField(
        models.BigIntegerField(), size=LATENCY_BUCKETS, default=_empty_histogram
    )
    thumbs_up = models.BigIntegerField(default=0)
    thumbs_down = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class CallRollupHourly(CallRollup):
    """One row per UTC hour and key: the source for short periods (tokens per minute)."""

    bucket = models.DateTimeField()

    class Meta:
        db_table = "llm_call_rollup_hourly"
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(
                fields=["bucket", "workspace", "feature", "alias", "provider", "model"],
                name="llm_call_rollup_hourly_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H}h {self.alias} {self.model}"


class CallRollupDaily(CallRollup):
    """One row per UTC day and key: 24x fewer rows, the source for 30-day charts."""

    bucket = models.DateField()

    class Meta:
        db_table = "llm_call_rollup_daily"
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(
                fields=["bucket", "workspace", "feature", "alias", "provider", "model"],
                name="llm_call_rollup_daily_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d} {self.alias} {self.model}"
