"""Switching a workspace's documents to another embedding model, in the background.

`reembed_start` records the route switched to (checked with one small call first) and queues
the task; `reembed_step` (the task, apps/rag/tasks.py) embeds chunks in batches of
RAG_EMBED_BATCH through the gateway into `next_vector`, STEP_BATCHES batches per task run,
then queues the next run. Search and new documents keep the searched vectors and the old
route all along (apps/rag/embedder.py). When no chunk lacks the target's vector, `_switch`
swaps every chunk's vectors and the index row's route in one transaction, with writers of
chunks held off by a table lock, so no search ever sees two models and no chunk written
meanwhile is left with the old one.

Resumable: a worker killed midway leaves the chunks it finished with their next vector and
the message to Celery (acks_late) or to `reembed_start` again, which carry on from there. One
step runs at a time per schema (an advisory lock held by the step's connection, released if
the worker dies). Members see progress on the Documents page over the workspace socket.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django_tenants.utils import schema_context

from apps.common.errors import ApplicationError
from apps.common.tenancy import current_schema
from apps.llm.services import BudgetExceededError, GatewayError
from apps.workspaces.models import Workspace

from .embedder import EmbedRoute, alias_route, embed_texts, index_for_update, route_parse
from .live import embedding_index_changed
from .models import Chunk, Document, EmbeddingIndex

log = structlog.get_logger(__name__)

Status = EmbeddingIndex.Status
REEMBED_FEATURE = "rag.reembed"
REEMBED_TASK = "apps.rag.tasks.reembed_documents"
STEP_BATCHES = 20  # per task run: short runs, so a redelivery or a deploy loses little


def reembed_start(*, workspace: Workspace, model: str | None = None) -> EmbeddingIndex:
    """Switch `workspace`'s documents to `model` (`provider:model`; default: what the `embed`
    alias answers with now) in the background. Starting the switch under way again resumes
    it; naming the model documents already use stops a switch under way."""
    with schema_context(workspace.schema_name):
        target = route_parse(workspace, model) if model else alias_route(workspace)
        with transaction.atomic():
            index = index_for_update(workspace)
            current = EmbedRoute(index.provider, index.model)
            if target.model == current.model:
                if index.status == Status.IDLE:
                    raise ApplicationError(
                        f"The documents are already embedded with {current}.", field="model"
                    )
                _forget_next()
                _set(index, status=Status.IDLE, target_provider="", target_model="", error="")
                log.info("rag.reembed_stopped", workspace=workspace.slug)
                return index
        _probe(workspace, target)  # outside the transaction: a model call
        with transaction.atomic():
            index = index_for_update(workspace)
            if (index.target_provider, index.target_model) != (target.provider, target.model):
                _forget_next()  # another target's vectors: never mixed into this switch
            _set(
                index,
                status=Status.SWITCHING,
                target_provider=target.provider,
                target_model=target.model,
                error="",
                total=Chunk.objects.count(),
                done=Chunk.objects.filter(next_model=target.model).count(),
            )
            transaction.on_commit(_enqueue)
        log.info("rag.reembed_started", workspace=workspace.slug, target=str(target))
        return index


def _probe(workspace: Workspace, target: EmbedRoute) -> None:
    """One tiny call: the target answers, as itself, before any chunk is touched."""
    try:
        reply = embed_texts(
            workspace=workspace, inputs=("probe",), feature=REEMBED_FEATURE, route=target
        )
    except GatewayError as exc:
        raise ApplicationError(
            f"The embedding model {target} cannot be used: {exc.message}", field="model"
        ) from exc
    if reply.model != target.model:
        raise ApplicationError(
            f"The embedding model {target} answered as {reply.model}; it cannot be used.",
            field="model",
        )


def _forget_next() -> None:
    Chunk.objects.exclude(next_model="").update(next_vector=None, next_dims=None, next_model="")


def _set(index: EmbeddingIndex, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(index, name, value)
    index.save()
    embedding_index_changed(index)


def _enqueue() -> None:
    current_app.send_task(REEMBED_TASK)


def reembed_step(*, workspace: Workspace, batches: int = STEP_BATCHES) -> str:
    """Embed up to `batches` batches of chunks with the switch's target (the current schema's),
    then queue the next step, or switch when every chunk has the target's vector. Returns
    "idle" (no switch under way), "busy" (another step runs), "running", "switched" or
    "failed"."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [_lock_key()])
        row = cursor.fetchone()
    if not (row and row[0]):
        return "busy"
    try:
        return _step(workspace, batches)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [_lock_key()])


def _lock_key() -> str:
    return f"{current_schema()}:rag.reembed"


def _step(workspace: Workspace, batches: int) -> str:
    index = EmbeddingIndex.objects.filter(pk=1).first()
    if index is None or index.status != Status.SWITCHING:
        return "idle"
    target = EmbedRoute(index.target_provider, index.target_model)
    EmbeddingIndex.objects.filter(pk=1).update(
        total=Chunk.objects.count(), done=Chunk.objects.filter(next_model=target.model).count()
    )
    for _ in range(batches):
        todo = list(
            Chunk.objects.exclude(next_model=target.model)
            .order_by("pk")
            .values_list("pk", "embed_text")[: settings.RAG_EMBED_BATCH]
        )
        if not todo:
            outcome = _switch(target)
            if outcome:
                return outcome
            continue  # chunks were added meanwhile: embed them first
        try:
            reply = embed_texts(
                workspace=workspace,
                inputs=tuple(text for _, text in todo),
                feature=REEMBED_FEATURE,
                route=target,
                request_id=f"rag-reembed-{target.model}-{todo[0][0]}",
            )
        except GatewayError as exc:
            reason = (
                f"Paused: {exc.message}"
                if isinstance(exc, BudgetExceededError)
                else f"The embedding model failed: {exc.message}"
            )
            _stop(target, f"{reason} Start the switch again to resume.")
            return "failed"
        rows = [
            Chunk(pk=pk, next_vector=list(v), next_dims=len(v), next_model=reply.model)
            for (pk, _), v in zip(todo, reply.vectors, strict=True)
        ]
        Chunk.objects.bulk_update(rows, ["next_vector", "next_dims", "next_model"])
        EmbeddingIndex.objects.filter(pk=1).update(done=F("done") + len(rows))
        fresh = EmbeddingIndex.objects.get(pk=1)
        if fresh.status != Status.SWITCHING or fresh.target_model != target.model:
            return "idle"  # stopped or retargeted meanwhile
        embedding_index_changed(fresh)
    transaction.on_commit(_enqueue)
    return "running"


def _stop(target: EmbedRoute, reason: str) -> None:
    with transaction.atomic():
        index = EmbeddingIndex.objects.select_for_update().get(pk=1)
        if index.status == Status.SWITCHING and index.target_model == target.model:
            _set(index, status=Status.FAILED, error=reason)
    log.info("rag.reembed_failed", target=str(target), reason=reason)


def _switch(target: EmbedRoute) -> str:
    """Swap every chunk's vectors for the target's and record the new route, in one
    transaction: "switched"; "idle" if the switch was stopped meanwhile; "" if a chunk still
    lacks the target's vector."""
    with transaction.atomic():
        index = EmbeddingIndex.objects.select_for_update().get(pk=1)
        if index.status != Status.SWITCHING or index.target_model != target.model:
            return "idle"
        with connection.cursor() as cursor:
            # Writers of chunks (indexing) wait until the commit; searches read on, and see
            # the old vectors until then.
            cursor.execute("LOCK TABLE rag_chunk IN SHARE ROW EXCLUSIVE MODE")
        if Chunk.objects.exclude(next_model=target.model).exists():
            return ""
        count = Chunk.objects.update(
            vector=F("next_vector"),
            dims=F("next_dims"),
            embedding_model=F("next_model"),
            next_vector=None,
            next_dims=None,
            next_model="",
        )
        Document.objects.exclude(embedding_model="").update(embedding_model=target.model)
        _set(
            index,
            provider=target.provider,
            model=target.model,
            target_provider="",
            target_model="",
            status=Status.IDLE,
            done=count,
            total=count,
            error="",
        )
    log.info("rag.reembed_switched", target=str(target), chunks=count)
    return "switched"
