"""The gateway's per-workspace tables (this app is a TENANT app: each workspace schema has its
own, so nothing here can cross tenants)."""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from apps.common.models import BaseModel


class ModelSynonym(BaseModel):
    """Another name for one of the workspace's aliases, for clients that only accept OpenAI's
    model names (`gpt-4o-mini` → `fast`). Resolved before the gateway sees the request."""

    name = models.CharField(max_length=100, unique=True)
    alias = models.CharField(max_length=100)

    class Meta:
        ordering: ClassVar[list[str]] = ["name"]

    def __str__(self) -> str:
        return f"{self.name} → {self.alias}"


class StoredResponse(BaseModel):
    """A `/v1/responses` answer kept for `GET /v1/responses/{id}` and `previous_response_id`.
    `items` is the whole conversation as Responses input items (the chain's input and output
    items, this response's last); `body` the response object as it was returned. Deleted at
    `expires_at` (the plan's trace retention, set when stored)."""

    id = models.CharField(max_length=64, primary_key=True)
    model = models.CharField(max_length=100)
    items = models.JSONField(default=list)
    body = models.JSONField(default=dict)
    api_key_prefix = models.CharField(max_length=24, blank=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]

    def __str__(self) -> str:
        return self.id
