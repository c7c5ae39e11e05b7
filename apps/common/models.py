"""Abstract models every app builds on."""

from __future__ import annotations

from typing import ClassVar

from django.db import models


class BaseModel(models.Model):
    """Timestamps on every row."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class OutboxEntry(models.Model):
    """A write kept in the database because Redis refused it (apps/common/outbox.py,
    `db_outbox_put`): performed later by the drain of its `kind`, then deleted."""

    kind = models.CharField(max_length=64)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["kind", "id"], name="common_outbox_kind_id")
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"
