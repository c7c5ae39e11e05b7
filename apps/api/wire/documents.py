"""`/v1/documents` on the wire: the bodies that add a document (multipart with a file, or JSON
with text or a URL), documents and search hits out."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from pydantic import ValidationError

from apps.rag.models import Document
from apps.rag.retrieval import Hit

from ..schemas import DocumentFromText, DocumentFromUrl, DocumentUpload
from ..schemas.outcomes import MAX_ID
from .errors import ApiError
from .validation import validation_error

NOT_DECLARED = frozenset({"", "application/octet-stream"})


def document_id(text: str) -> int | None:
    """The document id in a path, or None when it cannot be one (the answer is then a 404)."""
    if not re.fullmatch(r"[0-9]{1,19}", text):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def document_body(data: dict[str, Any]) -> DocumentFromText | DocumentFromUrl:
    """A JSON body: text (with a title) or a URL, never both."""
    if "text" in data and "url" in data:
        raise ApiError(
            400,
            "Send either 'text' or 'url', not both: one request adds one document.",
            code="invalid_value",
            param="url",
        )
    model: type[DocumentFromText | DocumentFromUrl]
    if "url" in data:
        model = DocumentFromUrl
    elif "text" in data:
        model = DocumentFromText
    else:
        raise ApiError(
            400,
            "Missing required parameter: send 'text' (with 'title') or 'url' as JSON, or a "
            "file as multipart/form-data.",
            code="missing_required_parameter",
            param="text",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


@dataclass(frozen=True, slots=True)
class Upload:
    """A multipart upload, read and checked."""

    data: bytes
    filename: str
    mime: str  # as declared by the client; "" when it said nothing useful
    title: str | None
    collection: int | None


class _InMemory(MemoryFileUploadHandler):
    """Keeps every file in memory: the body is in memory already, capped by the endpoint."""

    def handle_raw_input(self, *args: Any, **kwargs: Any) -> None:
        self.activated = True


def _unreadable(detail: str) -> ApiError:
    return ApiError(
        400,
        f"The multipart/form-data body could not be read: {detail}",
        code="invalid_multipart",
    )


def document_upload(raw: bytes, content_type: str) -> Upload:
    """The one file (part `file`, with a file name) and the fields of a multipart body."""
    meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(raw))}
    try:
        fields, files = MultiPartParser(meta, io.BytesIO(raw), [_InMemory()], "utf-8").parse()
    except RequestDataTooBig:
        raise ApiError(
            413, "The form fields beside the file are too large.", code="request_too_large"
        ) from None
    except (MultiPartParserError, SuspiciousOperation, ValueError, UnicodeError) as exc:
        raise _unreadable(str(exc) or type(exc).__name__) from None
    if "file" in fields:
        raise ApiError(
            400,
            "Send the document as a file part: Content-Disposition: form-data; "
            'name="file"; filename="…".',
            code="invalid_value",
            param="file",
        )
    for name in files:
        if name != "file":
            raise ApiError(
                400,
                f"Unrecognized request argument supplied: {name}",
                code="unknown_parameter",
                param=name,
            )
    uploads = files.getlist("file")
    if not uploads:
        raise ApiError(
            400,
            "Missing required parameter: 'file'.",
            code="missing_required_parameter",
            param="file",
        )
    if len(uploads) > 1:
        raise ApiError(400, "Send one file per request.", code="invalid_value", param="file")
    values: dict[str, Any] = {}
    for name in fields:
        given = fields.getlist(name)
        if len(given) > 1:
            raise ApiError(400, f"Give the field '{name}' once.", code="invalid_value", param=name)
        values[name] = given[0]
    upload = uploads[0]
    data = upload.read()
    try:
        body = DocumentUpload.model_validate({**values, "file": data})
    except ValidationError as exc:
        raise validation_error(exc) from None
    declared = (upload.content_type or "").split(";", 1)[0].strip().lower()
    return Upload(
        data=body.file,
        filename=upload.name or "",
        mime="" if declared in NOT_DECLARED else declared,
        title=body.title,
        collection=body.collection,
    )


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def document(row: Document) -> dict[str, Any]:
    return {
        "id": row.pk,
        "object": "document",
        "title": row.title,
        "source": str(row.source),
        "status": str(row.status),
        "error": row.error or None,
        "chunk_count": row.chunk_count,
        "collection_id": row.collection_id,
        "filename": row.filename or None,
        "url": row.url or None,
        "mime": row.mime or None,
        "size_bytes": row.size_bytes,
        "embedding_model": row.embedding_model or None,
        "created_at": _timestamp(row.created_at),
        "updated_at": _timestamp(row.updated_at),
    }


def document_list(rows: list[Document], *, has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": [document(row) for row in rows], "has_more": has_more}


def document_deleted(document_id: int) -> dict[str, Any]:
    return {"id": document_id, "object": "document.deleted", "deleted": True}


def search_results(hits: list[Hit], *, mode: str) -> dict[str, Any]:
    return {
        "object": "list",
        "mode": mode,
        "data": [
            {
                "object": "search.hit",
                "document_id": hit.document_id,
                "document_title": hit.title,
                "chunk_id": hit.chunk_id,
                "ordinal": hit.ordinal,
                "heading_path": hit.heading_path,
                "page": hit.page,
                "text": hit.text,
                "score": hit.score,
                "lexical_score": hit.lexical_score,
                "dense_score": hit.dense_score,
            }
            for hit in hits
        ],
    }
