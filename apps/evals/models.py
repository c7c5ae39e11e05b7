"""eval_run, eval_result (what `evals run` measured) and eval_candidate (sampled production calls).

Public schema: runs are the platform's (CI, prompt authors); candidates come from llm_trace,
which is public too. A candidate carries `workspace`, and only staff see candidates (admin).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models


class EvalRun(models.Model):
    """One prompt version evaluated on its eval set through one alias."""

    batch = models.UUIDField(db_index=True)  # the runs of one `evals run` (side by side)
    prompt_name = models.CharField(max_length=100)
    prompt_version = models.CharField(max_length=32)
    content_hash = models.CharField(max_length=64)
    eval_hash = models.CharField(max_length=64)
    alias = models.CharField(max_length=32)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=128, blank=True)
    offline = models.BooleanField(default=False)
    workspace = models.ForeignKey(
        "workspaces.Workspace", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    git_commit = models.CharField(max_length=40, blank=True)
    examples = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    score = models.FloatField(default=0.0)
    cost_micros = models.BigIntegerField(default=0)  # outputs and scoring (judge, embeddings)
    latency_ms_p50 = models.FloatField(default=0.0)
    latency_ms_p95 = models.FloatField(default=0.0)
    judge_agreement = models.FloatField(null=True, blank=True)  # vs human labels, if any
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        db_table = "eval_run"
        ordering: ClassVar[list[str]] = ["-started_at"]
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=["prompt_name", "started_at"], name="eval_run_prompt_time"),
        ]

    def __str__(self) -> str:
        return f"{self.prompt_name} {self.prompt_version} @{self.alias}: {self.score:.3f}"

    @property
    def pass_rate(self) -> float:
        return self.passed / self.examples if self.examples else 0.0


class EvalResult(models.Model):
    """One example's output and its checks."""

    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    example_id = models.CharField(max_length=200)
    output = models.TextField(blank=True)
    score = models.FloatField()
    passed = models.BooleanField()
    checks = models.JSONField(default=list)
    error = models.TextField(blank=True)
    cost_micros = models.BigIntegerField(default=0)
    latency_ms = models.FloatField(default=0.0)
    trace_id = models.CharField(max_length=64, blank=True)

    class Meta:
        db_table = "eval_result"
        ordering: ClassVar[list[str]] = ["run", "id"]
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=["run", "example_id"], name="eval_result_run_example"),
        ]

    def __str__(self) -> str:
        return f"{self.example_id}: {self.score:.3f}"


class CandidateStatus(models.TextChoices):
    NEW = "new", "New"
    PROMOTED = "promoted", "Promoted"
    DISMISSED = "dismissed", "Dismissed"


class EvalCandidate(models.Model):
    """A sampled gateway call (already PII-masked), waiting for a person to promote it."""

    trace_id = models.UUIDField(unique=True)
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    feature = models.CharField(max_length=64)
    alias = models.CharField(max_length=32)
    model = models.CharField(max_length=128, blank=True)
    prompt_name = models.CharField(max_length=100, blank=True)
    prompt_version = models.CharField(max_length=32, blank=True)
    messages = models.JSONField(default=list)
    response = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=CandidateStatus.choices, default=CandidateStatus.NEW
    )
    example = models.JSONField(null=True, blank=True)  # the exported JSONL line, once promoted
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "eval_candidate"
        ordering: ClassVar[list[str]] = ["-created_at"]
        indexes: ClassVar[list[Any]] = [
            models.Index(fields=["workspace", "created_at"], name="eval_candidate_ws_time"),
            models.Index(fields=["prompt_name", "status"], name="eval_candidate_prompt"),
        ]

    def __str__(self) -> str:
        return f"candidate {self.trace_id} ({self.prompt_name or self.feature})"
