"""RAG tasks. Tasks take ids, call one service, and run in the sender's workspace schema
(tenant-schemas-celery)."""

from __future__ import annotations

from celery import shared_task

from apps.workspaces.selectors import workspace_current

from .reembed import reembed_step
from .services import document_index


@shared_task(ignore_result=True)
def index_document(document_id: int) -> str:
    """Parse, chunk and embed one document (or resume its embedding). acks_late: a worker
    killed midway leaves the message to be delivered again, and the service resumes."""
    return document_index(workspace=workspace_current(), document_id=document_id).status


@shared_task(ignore_result=True)
def reembed_documents() -> str:
    """A step of the workspace's embedding model switch; it queues the next one itself.
    acks_late: a worker killed midway leaves the message to be delivered again, and the step
    carries on from the chunks already done."""
    return reembed_step(workspace=workspace_current())
