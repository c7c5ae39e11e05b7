"""Which model embeds a workspace's documents and queries, and the calls that do it.

The `embed` alias answers with whatever its route resolves to now (a workspace's model
override, a provider key added or removed). Vectors of two models must never meet in one
search, so RAG pins its calls to the route recorded in the schema's EmbeddingIndex row: the
model that made the searched vectors. A change of the alias's route takes effect for
documents only through a switch (apps/rag/reembed.py), which re-embeds every chunk and then
moves the row to the new route at once.

Calls still go through the gateway (metered, budgeted, billed): the caller's scope is built as
for any call, with the alias's primary route replaced by the pinned one, the same mechanism
a workspace's model override uses. A pinned route the workspace can no longer reach (its key
removed) is refused before any call, never silently answered by another model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from django.db import transaction

from apps.common.errors import ApplicationError
from apps.llm.services import (
    Actor,
    CallScope,
    EmbedRequest,
    EmbedResponse,
    ProviderUnavailableError,
    allm_embed,
    call_scope_for,
    embedding_model_for,
    run_sync,
)
from apps.workspaces.models import User, Workspace

from .models import Chunk, EmbeddingIndex

EMBED_ALIAS = "embed"


@dataclass(frozen=True, slots=True)
class EmbedRoute:
    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


def embed_texts(
    *,
    workspace: Workspace,
    inputs: tuple[str, ...],
    feature: str,
    route: EmbedRoute | None,
    actor: Actor | None = None,
    user: User | None = None,
    request_id: str | None = None,
) -> EmbedResponse:
    """Vectors for `inputs` through the gateway's `embed` alias, pinned to `route` (None: the
    alias as it resolves now). ProviderUnavailableError if the route cannot be reached."""
    scope = call_scope_for(
        workspace=workspace,
        actor=actor or Actor("system", "rag"),
        feature=feature,
        user=user,
        request_id=request_id,
    )
    if route is not None:
        scope = _pinned(scope, route)
        if embedding_model_for(scope, EMBED_ALIAS) != route.model:
            raise ProviderUnavailableError(
                f"The embedding model {route.model} ({route.provider}) is not available to "
                "this workspace (is its provider's key gone?)."
            )
    reply = run_sync(allm_embed(scope=scope, request=EmbedRequest(EMBED_ALIAS, inputs)))
    if route is not None and reply.model != route.model:
        # vectors labelled with another name would never match the index's model
        raise ProviderUnavailableError(
            f"The embedding model {route.model} answered as {reply.model}; its vectors cannot "
            "join this workspace's index."
        )
    return reply


def _pinned(scope: CallScope, route: EmbedRoute) -> CallScope:
    spec = scope.routing.aliases[EMBED_ALIAS]
    primary = dataclasses.replace(spec.primary, provider=route.provider, model=route.model)
    return dataclasses.replace(scope, routing=scope.routing.with_overrides({EMBED_ALIAS: primary}))


def alias_route(workspace: Workspace) -> EmbedRoute:
    """What the `embed` alias answers with for `workspace` now."""
    scope = call_scope_for(workspace=workspace, actor=Actor("system", "rag"), feature="rag")
    routes = scope.routing.resolve(EMBED_ALIAS, configured=frozenset(scope.providers), kind="embed")
    return EmbedRoute(routes.primary.provider, routes.primary.model)


def route_parse(workspace: Workspace, text: str) -> EmbedRoute:
    """`provider:model`, or a model the `embed` alias can route to (its primary, fallback or
    offline route); ApplicationError (field `model`) otherwise."""
    text = text.strip()
    if ":" in text:
        provider, _, model = text.partition(":")
        if provider.strip() and model.strip():
            return EmbedRoute(provider.strip(), model.strip())
    else:
        scope = call_scope_for(workspace=workspace, actor=Actor("system", "rag"), feature="rag")
        spec = scope.routing.aliases[EMBED_ALIAS]
        for r in (spec.primary, spec.fallback, spec.offline):
            if r is not None and r.model == text:
                return EmbedRoute(r.provider, r.model)
    raise ApplicationError(
        f"Name the model as provider:model (e.g. openai:text-embedding-3-small), not {text!r}.",
        field="model",
    )


def index_route() -> EmbedRoute | None:
    """The route that made the current schema's searched vectors, or None before any document
    was embedded (then the alias as it resolves answers)."""
    row = EmbeddingIndex.objects.filter(pk=1).values_list("provider", "model").first()
    if row is None or not row[1] or not _vectors_exist():
        return None  # nothing embedded (yet, or any more): the alias answers
    return EmbedRoute(*row)


def _vectors_exist() -> bool:
    return Chunk.objects.exclude(embedding_model="").exists()


def index_start(workspace: Workspace) -> None:
    """Record the schema's route before its first vectors are written (no-op once it is,
    unless every vector was deleted since: then the alias's route now is recorded)."""
    recorded = EmbeddingIndex.objects.filter(pk=1).exclude(model="")
    if recorded.exists() and _vectors_exist():
        return
    with transaction.atomic():
        if not _vectors_exist():  # every vector is gone: the schema starts again on the alias
            EmbeddingIndex.objects.filter(pk=1, status=EmbeddingIndex.Status.IDLE).update(
                provider="", model=""
            )
        index_for_update(workspace)


def index_for_update(workspace: Workspace) -> EmbeddingIndex:
    """The schema's row, locked (call in a transaction). Without a route yet it records the
    model of the vectors already there (documents embedded before the row existed; its
    provider matched against the alias's routes), else what the alias answers with now."""
    index, _ = EmbeddingIndex.objects.select_for_update().get_or_create(pk=1)
    if not index.model:
        model = (
            Chunk.objects.exclude(embedding_model="")
            .values_list("embedding_model", flat=True)
            .first()
        )
        current = alias_route(workspace)
        route = current
        if model and model != current.model:
            try:
                route = route_parse(workspace, model)
            except ApplicationError:
                route = EmbedRoute("", model)
        index.provider, index.model = route.provider, route.model
        index.save(update_fields=["provider", "model", "updated_at"])
    return index
