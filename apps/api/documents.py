"""`/v1/documents`: API clients add documents to their workspace (a file, text or a web page),
list, read and delete them, and search their chunks. Keys need the `documents` scope.

Every call runs in the key's workspace schema (`tenant_context`): an id names a document of
that workspace only, so another workspace's document is "not found", never "forbidden", and a
search cannot reach another workspace's chunks. Each route calls one rag service or selector.
Requests are counted against the key's per-minute rate limit on their own (`admission.principal_for`);
a search's embedding call is metered and budgeted like any model call.

An upload's body is capped by the workspace's plan (its largest document, plus room for the
multipart framing), read only after the key is checked, and refused before any of it is read
when its Content-Length is over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.http import Http404
from django_tenants.utils import tenant_context

from apps.billing.plans import DocumentLimits
from apps.llm.services import Actor, GatewayError
from apps.rag import services
from apps.rag.intake import human_size, text_document
from apps.rag.models import Collection, Document
from apps.rag.retrieval import Hit, search_chunks
from apps.rag.selectors import access_collection, access_document, document_limits, document_page
from apps.workspaces.models import ApiKey

from . import wire
from .admission import principal_for
from .principal import in_db
from .request import Request
from .schemas import DocumentFromText

T = TypeVar("T")

SCOPE = "documents"
# Room for the multipart framing and the fields beside the file.
UPLOAD_OVERHEAD_BYTES = 64 * 1024


async def _api_key(request: Request) -> ApiKey:
    principal = await principal_for(request, need=SCOPE, feature="api.documents", counted=True)
    return principal.api_key


async def _in_workspace(
    api_key: ApiKey, work: Callable[[], T], *, params: dict[str, str] | None = None
) -> T:
    """Run rag work in the key's workspace schema, entered on purpose and left after."""

    def entered() -> T:
        with tenant_context(api_key.workspace):
            return work()

    return await in_db(entered, params=params)


def _not_found(text: str) -> wire.ApiError:
    return wire.ApiError(
        404,
        f"No document {text} in this workspace.",
        code="document_not_found",
        param="document_id",
    )


def _collection(collection_id: int | None) -> Collection | None:
    if collection_id is None:
        return None
    try:
        return access_collection(collection_id=collection_id)
    except Http404:
        raise wire.ApiError(
            404,
            f"No collection {collection_id} in this workspace.",
            code="collection_not_found",
            param="collection",
        ) from None


def _too_large(limits: DocumentLimits) -> str:
    return (
        f"The request is larger than a document may be: the {limits.plan} plan allows documents "
        f"of at most {human_size(limits.max_file_bytes)}."
    )


async def create_document(request: Request) -> None:
    api_key = await _api_key(request)
    limits = await in_db(lambda: document_limits(workspace=api_key.workspace))
    raw = await request.body(
        limit=limits.max_file_bytes + UPLOAD_OVERHEAD_BYTES, too_large=_too_large(limits)
    )
    content_type = request.headers.get("content-type", "")
    multipart = content_type.lower().startswith("multipart/form-data")
    source = Document.Source.API

    def add() -> Document:
        # the key acts for the member who made it (None: made with the CLI)
        user = api_key.created_by if api_key.created_by_id else None
        if multipart:
            upload = wire.document_upload(raw, content_type)
            return services.document_add(
                user=user,
                data=upload.data,
                filename=upload.filename,
                mime=upload.mime,
                source=source,
                title=upload.title or "",
                collection=_collection(upload.collection),
            )
        body = wire.document_body(wire.parse_json(raw))
        if isinstance(body, DocumentFromText):
            text = text_document(
                title=body.title, text=body.text, markdown=body.format == "markdown"
            )
            return services.document_add(
                user=user, source=source, collection=_collection(body.collection), **text
            )
        return services.document_add_url(
            user=user,
            url=body.url,
            title=body.title or "",
            source=source,
            collection=_collection(body.collection),
        )

    # a text's size and count refusals name the field the request used
    document = await _in_workspace(api_key, add, params=None if multipart else {"file": "text"})
    await request.json(201, wire.document(document))


async def list_documents(request: Request) -> None:
    api_key = await _api_key(request)
    query = wire.document_query(request.scope["query_string"])
    rows, has_more = await _in_workspace(
        api_key,
        lambda: document_page(
            limit=query.limit,
            after_id=query.after,
            collection_id=query.collection,
            status=query.status,
        ),
    )
    await request.json(200, wire.document_list(rows, has_more=has_more))


def _access(text: str) -> Document:
    document_id = wire.document_id(text)
    if document_id is None:
        raise _not_found(text)
    try:
        return access_document(document_id=document_id)
    except Http404:
        raise _not_found(text) from None


async def get_document(request: Request) -> None:
    api_key = await _api_key(request)
    text = request.path_params["document_id"]
    document = await _in_workspace(api_key, lambda: _access(text))
    await request.json(200, wire.document(document))


async def delete_document(request: Request) -> None:
    api_key = await _api_key(request)
    text = request.path_params["document_id"]

    def delete() -> int:
        document = _access(text)
        pk = document.pk
        services.document_delete(document=document)
        return pk

    document_id = await _in_workspace(api_key, delete)
    await request.json(200, wire.document_deleted(document_id))


async def search_documents(request: Request) -> None:
    raw = await request.body()
    api_key = await _api_key(request)
    body = wire.search_body(wire.parse_json(raw))

    def search() -> list[Hit]:
        try:
            return search_chunks(
                workspace=api_key.workspace,
                query=body.query,
                k=body.k,
                mode=body.mode,
                collection_ids=body.collection_ids,
                document_ids=body.document_ids,
                actor=Actor("api_key", str(api_key.pk)),
            )
        except GatewayError as exc:
            raise wire.gateway_error(exc) from None

    hits = await in_db(search)
    await request.json(200, wire.search_results(hits, mode=body.mode))
