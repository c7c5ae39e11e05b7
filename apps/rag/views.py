"""The Documents pages on a workspace host (members only: the middleware let them in).

Members list, add (upload several files, paste text, or import a web page by its URL) and
re-index documents; owners and admins delete any document, a member only those they added.
Sizes and counts are bounded by the workspace's plan (`document_limits`). Indexing runs on
Celery; the page hears of status changes over the workspace socket (static/rag/documents.js)
and re-reads its live parts here (`HX-Target`: the table, or a document's summary)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from apps.common.errors import ApplicationError
from apps.workspaces.forms import attach_error
from apps.workspaces.http import WorkspaceRequest

from . import services
from .forms import (
    MAX_FILES,
    FileSizeLimit,
    PasteForm,
    UploadForm,
    UrlForm,
    max_upload_bytes,
    paste_refusal,
    paste_too_long,
    upload_mime,
    upload_refusal,
)
from .intake import human_size
from .models import Document
from .selectors import (
    access_document,
    chunk_page_number,
    document_can_delete,
    document_chunks,
    document_is_indexing,
    document_limits,
    document_list,
    document_rows,
    embedding_index_get,
)

DOCUMENTS_PAGE_SIZE = 50
CHUNKS_PAGE_SIZE = 50
TABLE_TARGET = "documents-table"
SUMMARY_TARGET = "document-summary"


def _is_target(request: WorkspaceRequest, target: str) -> bool:
    """An htmx-style request for one live part of the page (sent by documents.js)."""
    return (
        request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target") == target
    )


def documents_page(
    request: WorkspaceRequest,
    *,
    upload_form: UploadForm | None = None,
    paste_form: PasteForm | None = None,
    url_form: UrlForm | None = None,
    status: int = 200,
) -> HttpResponse:
    page = Paginator(document_list(), DOCUMENTS_PAGE_SIZE).get_page(request.GET.get("page"))
    context: dict[str, Any] = {
        "page": page,
        "rows": document_rows(page.object_list),
        "embedding_index": embedding_index_get(),
    }
    if _is_target(request, TABLE_TARGET):
        return render(request, "rag/_documents_table.html", context)
    limits = document_limits(workspace=request.workspace)
    context |= {
        "upload_form": upload_form or UploadForm(limits=limits),
        "paste_form": paste_form or PasteForm(limits=limits),
        "url_form": url_form or UrlForm(),
        "max_files": MAX_FILES,
        "max_file_bytes": limits.max_file_bytes,
        "max_upload_bytes": max_upload_bytes(limits),
        "limits": limits,
        "max_file_size": human_size(limits.max_file_bytes),
    }
    return render(request, "rag/documents.html", context, status=status)


def _upload_refused(request: WorkspaceRequest, message: str, status: int) -> HttpResponse:
    form = UploadForm(data={}, refused=message, limits=document_limits(workspace=request.workspace))
    return documents_page(request, upload_form=form, status=status)


@csrf_exempt  # checked by `_upload` once the size is known and the handlers are in place
@require_POST
def document_upload(request: WorkspaceRequest) -> HttpResponse:
    limits = document_limits(workspace=request.workspace)
    refusal = upload_refusal(request.META, limits)
    if refusal:  # before reading the body
        return _upload_refused(request, refusal, 413)
    limit = FileSizeLimit(request, max_file_bytes=limits.max_file_bytes)
    request.upload_handlers.insert(0, limit)
    try:
        request.FILES  # noqa: B018 — parsed here, through the size limit, not by the CSRF check
    except TooManyFilesSent:
        message = f"Too many files in one upload; at most {MAX_FILES}. Nothing was added."
        return _upload_refused(request, message, 400)
    return _upload(request, limit)


@csrf_protect
def _upload(request: WorkspaceRequest, limit: FileSizeLimit) -> HttpResponse:
    limits = document_limits(workspace=request.workspace)
    form = UploadForm(request.POST, request.FILES, limits=limits, too_large=limit.too_large)
    if not form.is_valid():
        return documents_page(request, upload_form=form, status=400)
    files = form.cleaned_data["file"]
    try:
        with transaction.atomic():  # all or nothing: a refused file leaves none behind
            added = [
                services.document_add(
                    user=request.user,
                    data=upload.read(),
                    filename=upload.name or "",
                    mime=upload_mime(upload),
                    source=Document.Source.UPLOAD,
                )
                for upload in files
            ]
    except ApplicationError as exc:
        attach_error(form, exc)
        if len(files) > 1:
            form.add_error("file", f"None of the {len(files)} files was added.")
        return documents_page(request, upload_form=form, status=exc.status)
    names = ", ".join(f"“{d.title}”" for d in added)
    noun = "document" if len(added) == 1 else "documents"
    messages.success(request, f"Added {len(added)} {noun}: {names}. Indexing has started.")
    return redirect("rag_documents")


@csrf_exempt  # checked by `_paste` once the size is known
@require_POST
def document_paste(request: WorkspaceRequest) -> HttpResponse:
    limits = document_limits(workspace=request.workspace)
    refusal = paste_refusal(request.META, limits)  # before reading the body
    if not refusal:
        try:
            request.POST  # noqa: B018 — parsed here: too long a text gets a message, not a 400 page
        except RequestDataTooBig:
            refusal = paste_too_long(limits)
    if refusal:
        form = PasteForm(data={}, refused=refusal, limits=limits)
        return documents_page(request, paste_form=form, status=413)
    return _paste(request)


@csrf_protect
def _paste(request: WorkspaceRequest) -> HttpResponse:
    form = PasteForm(request.POST, limits=document_limits(workspace=request.workspace))
    if not form.is_valid():
        return documents_page(request, paste_form=form, status=400)
    try:
        document = services.document_add(
            user=request.user, source=Document.Source.TEXT, **form.document_fields()
        )
    except ApplicationError as exc:
        if exc.field == "file":
            exc.field = "text"
        attach_error(form, exc)
        return documents_page(request, paste_form=form, status=exc.status)
    messages.success(request, f"Added “{document.title}”. Indexing has started.")
    return redirect("rag_documents")


@require_POST
def document_import_url(request: WorkspaceRequest) -> HttpResponse:
    """Queue a web page: the URL is checked now; the page is fetched by the indexing task."""
    form = UrlForm(request.POST)
    if not form.is_valid():
        return documents_page(request, url_form=form, status=400)
    try:
        document = services.document_add_url(
            user=request.user, url=form.cleaned_data["url"], title=form.cleaned_data["title"]
        )
    except ApplicationError as exc:
        attach_error(form, exc)
        return documents_page(request, url_form=form, status=exc.status)
    messages.success(request, f"Added “{document.title}”. The page is being fetched, then indexed.")
    return redirect("rag_documents")


def document_detail(
    request: WorkspaceRequest, document_id: int, *, error: str = "", status: int = 200
) -> HttpResponse:
    document = access_document(document_id=document_id)
    context: dict[str, Any] = {
        "document": document,
        "added_by": document_rows([document])[0].added_by,
        "can_delete": document_can_delete(document=document, membership=request.membership),
        "indexing": document_is_indexing(document),
        "reindex_error": error,
    }
    if _is_target(request, SUMMARY_TARGET):
        return render(request, "rag/_document_summary.html", context)
    chunks = Paginator(document_chunks(document=document), CHUNKS_PAGE_SIZE)
    page = request.GET.get("page")
    cited_chunk = request.GET.get("chunk", "")
    if page is None and cited_chunk.isdigit():  # a citation: open the page that holds it
        page = str(
            chunk_page_number(
                document=document, ordinal=int(cited_chunk), per_page=CHUNKS_PAGE_SIZE
            )
        )
    context["chunks_page"] = chunks.get_page(page)
    return render(request, "rag/document.html", context, status=status)


@require_POST
def document_reindex(request: WorkspaceRequest, document_id: int) -> HttpResponse:
    document = access_document(document_id=document_id)
    if document_is_indexing(document):
        error = (
            f"“{document.title}” is being indexed now ({document.get_status_display().lower()}); "
            "re-index it once it is ready, failed or paused."
        )
        return document_detail(request, document.pk, error=error, status=409)
    services.document_reindex(document=document)
    messages.success(request, f"“{document.title}” is queued to be indexed again.")
    return redirect("rag_document", document_id=document.pk)


def _delete_refused(request: WorkspaceRequest, document: Document) -> HttpResponse:
    return render(request, "rag/refused.html", {"document": document}, status=403)


def document_delete(request: WorkspaceRequest, document_id: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes."""
    document = access_document(document_id=document_id)
    if not document_can_delete(document=document, membership=request.membership):
        return _delete_refused(request, document)
    if request.method != "POST":
        return render(request, "rag/delete.html", {"document": document})
    title = document.title
    services.document_delete(document=document)
    messages.success(request, f"Deleted “{title}” and its chunks.")
    return redirect("rag_documents")
