"""Responses stored by `/v1/responses` (`store: true`, OpenAI's default): each workspace's in
its own schema, read back by id (`GET /v1/responses/{id}`, `previous_response_id`) and deleted
when their retention ends (the plan's trace retention, chosen by the caller when storing)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django_tenants.utils import get_tenant_model, schema_context

from apps.common.errors import NotFoundError
from apps.workspaces.models import Workspace

from .models import StoredResponse


def stored_response_save(
    *,
    workspace: Workspace,
    response_id: str,
    model: str,
    items: list[dict[str, Any]],
    body: dict[str, Any],
    retention_days: int,
    api_key_prefix: str = "",
) -> StoredResponse:
    """Keep a response (and the conversation it ends) for `retention_days`."""
    with schema_context(workspace.schema_name):
        return StoredResponse.objects.create(
            id=response_id,
            model=model,
            items=items,
            body=body,
            api_key_prefix=api_key_prefix,
            expires_at=timezone.now() + timedelta(days=retention_days),
        )


def access_stored_response(*, workspace: Workspace, response_id: str) -> StoredResponse:
    """A stored response of `workspace`; NotFoundError when missing, expired or another
    workspace's (one answer for all three)."""
    with schema_context(workspace.schema_name):
        found = StoredResponse.objects.filter(id=response_id, expires_at__gt=timezone.now())
        response = found.first()
    if response is None:
        raise NotFoundError(f"No response found with id '{response_id}'.", field="response_id")
    return response


def stored_response_delete(*, workspace: Workspace, response_id: str) -> None:
    """Delete a stored response now; NotFoundError as `access_stored_response`."""
    access_stored_response(workspace=workspace, response_id=response_id)
    with schema_context(workspace.schema_name):
        StoredResponse.objects.filter(id=response_id).delete()


def all_workspaces_stored_responses_expire(*, now: datetime | None = None) -> int:
    """Delete every workspace's responses past their retention; return how many."""
    now = now or timezone.now()
    deleted = 0
    for schema in (
        get_tenant_model()
        .objects.exclude(schema_name="public")
        .values_list("schema_name", flat=True)
    ):
        with schema_context(schema):
            count, _ = StoredResponse.objects.filter(expires_at__lte=now).delete()
            deleted += count
    return deleted
