"""RAG tasks. Tasks take ids, call one service, and run in the sender's workspace schema
(tenant-schemas-celery)."""

from __future__ import annotations

from celery import shared_task

from apps.workspaces.selectors import workspace_current

from .services import document_index


@shared_task(ignore_result=True)
def index_document(document_id: int) -> str:
    """Parse, chunk and embed one document (or resume its embedding). acks_late: a worker
    killed midway leaves the message to be delivered again, and the service resumes."""
    return document_index(workspace=workspace_current(), document_id=document_id).status
