"""Model synonyms: a workspace's other names for its aliases (`gpt-4o-mini` → `fast`), so
clients that only accept OpenAI's model names can use the gateway. Stored in the workspace's
schema; the API resolves a name before the gateway sees it."""

from __future__ import annotations

import re

import structlog
from django_tenants.utils import schema_context

from apps.common.errors import ApplicationError, NotFoundError
from apps.workspaces.models import Workspace

from .config import routing_table
from .models import ModelSynonym

log = structlog.get_logger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


def model_synonym_set(*, workspace: Workspace, name: str, alias: str) -> ModelSynonym:
    """Make `name` another name for `alias` in `workspace` (replacing what it named before)."""
    name = name.strip()
    table = routing_table()
    if not _NAME.match(name) or name.startswith("agent:"):
        raise ApplicationError(
            "A synonym is 1–100 letters, digits and . _ : - (not agent:…).", field="name"
        )
    if name in table.names():
        raise ApplicationError(f"{name!r} is already an alias.", field="name")
    if alias not in table.names():
        known = ", ".join(table.names())
        raise ApplicationError(f"Unknown alias {alias!r}; use one of: {known}.", field="alias")
    with schema_context(workspace.schema_name):
        synonym, _ = ModelSynonym.objects.update_or_create(name=name, defaults={"alias": alias})
    log.info("model_synonym.set", workspace=workspace.slug, name=name, alias=alias)
    return synonym


def model_synonym_delete(*, workspace: Workspace, name: str) -> None:
    """Remove the synonym `name`; NotFoundError if the workspace has none by that name."""
    with schema_context(workspace.schema_name):
        deleted, _ = ModelSynonym.objects.filter(name=name).delete()
    if not deleted:
        raise NotFoundError(f"There is no model synonym {name!r}.", field="name")


def model_synonyms(*, workspace: Workspace) -> dict[str, str]:
    """The workspace's synonyms: name → alias."""
    with schema_context(workspace.schema_name):
        return dict(ModelSynonym.objects.values_list("name", "alias"))


def model_resolve(*, workspace: Workspace, model: str) -> str:
    """The alias `model` names in `workspace`: an alias as it is, a synonym's alias, or
    `model` unchanged (the gateway then refuses it, listing the aliases). Reads the schema
    only for a name that is not an alias."""
    if model in routing_table().names():
        return model
    if "\x00" in model or len(model) > 200:  # no synonym is named so (PostgreSQL refuses NUL)
        return model
    with schema_context(workspace.schema_name):
        alias = ModelSynonym.objects.filter(name=model).values_list("alias", flat=True).first()
    return alias or model
