"""What may come into a workspace's documents, checked before anything is stored: file names,
sizes and counts against the workspace's plan, file types and URLs; and a URL document's page,
fetched by the indexing task through the SSRF-safe fetcher (apps/common/fetch.py).

A URL is checked at submit time only as far as that is cheap and certain: its scheme, host
syntax and port, and a host that names a private address by itself (an IP literal,
`localhost`). What needs DNS or the server — a name that resolves into our network, redirects,
the size, the type and the status of the answer — is the fetcher's, in the task, and ends as a
failed document with the reason.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import PurePath
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import connection

from apps.billing.plans import DocumentLimits
from apps.common.errors import ApplicationError
from apps.common.fetch import FetchError, fetch_url
from apps.common.tenancy import current_schema

from .ingest.parse import Format, ParseError, detect_format
from .models import Document

SNIFF_BYTES = 1024  # enough to tell a PDF or an HTML page from its first bytes
MAX_URL_CHARS = 2000  # Document.url
MAX_TITLE_CHARS = 300  # Document.title
FORMAT_MIME: dict[Format, str] = {
    "pdf": "application/pdf",
    "html": "text/html",
    "markdown": "text/markdown",
    "text": "text/plain",
}


class DocumentTooLarge(ApplicationError):
    status = 413
    code = "document_too_large"


class DocumentLimitReached(ApplicationError):
    status = 409
    code = "document_limit_reached"


_UNSAFE = re.compile(r"[^\w.\- ()]+")


def clean_filename(name: str) -> str:
    """The file's own name, safe to show and store: no directories (path traversal), no
    control characters, at most 200 characters; "document" when nothing is left."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip(" .")
    return name[:200] or "document"


def text_document(*, title: str, text: str, markdown: bool) -> dict[str, Any]:
    """What `document_add` needs for typed or pasted text: its bytes, a file name made from
    the title, and its type."""
    stem = PurePath(clean_filename(title))
    if stem.suffix.lower() in (".txt", ".md", ".markdown", ".text"):
        stem = stem.with_suffix("")
    return {
        "data": text.encode(),
        "filename": f"{stem}.{'md' if markdown else 'txt'}",
        "mime": "text/markdown" if markdown else "text/plain",
        "title": title,
    }


def clean_title(title: str) -> str:
    """A title fit to store and show: no control characters, at most 300 characters."""
    title = "".join(ch for ch in title or "" if unicodedata.category(ch)[0] != "C")
    return " ".join(title.split())[:MAX_TITLE_CHARS]


def human_size(size: int) -> str:
    """A size as the messages about files write it."""
    if size >= 1_000_000:
        return f"{size / 1e6:,.1f} MB"
    return f"{size:,} bytes"


def check_size(size: int, limits: DocumentLimits, *, field: str = "file") -> None:
    if size <= 0:
        raise ApplicationError("The file is empty.", field=field)
    if size > limits.max_file_bytes:
        raise DocumentTooLarge(
            f"The document is {human_size(size)}; the {limits.plan} plan allows documents of "
            f"at most {human_size(limits.max_file_bytes)}.",
            field=field,
        )


def check_count(limits: DocumentLimits, *, field: str = "file") -> None:
    """Refuse a new document when the workspace holds its plan's most. Call inside the
    transaction that adds it: a lock per schema makes concurrent adds count one another."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{current_schema()}:rag.add"]
        )
    held = Document.objects.count()
    if held >= limits.max_documents:
        raise DocumentLimitReached(
            f"This workspace holds {held:,} documents, the most the {limits.plan} plan allows "
            f"({limits.max_documents:,}); delete some first.",
            field=field,
        )


def check_format(data: bytes, *, filename: str, mime: str, field: str = "file") -> None:
    """Refuse a file of a type no parser reads (by its declared type, name or first bytes)."""
    try:
        detect_format(data[:SNIFF_BYTES], filename=filename, mime=mime or None)
    except ParseError as exc:
        raise ParseError(exc.message, field=field) from None


# --- URLs --------------------------------------------------------------------------------------

_URL_SYNTAX = URLValidator(schemes=["http", "https"])


def url_check(url: str) -> str:
    """The URL, stripped, if it may be imported as far as can be told without the network;
    otherwise ApplicationError (field "url") saying why."""
    url = (url or "").strip()
    if not url:
        raise ApplicationError("Enter the address of a web page (https://…).", field="url")
    if len(url) > MAX_URL_CHARS:
        raise ApplicationError(
            f"The URL is {len(url):,} characters long; at most {MAX_URL_CHARS:,} are accepted.",
            field="url",
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises ValueError for a port out of range
    except ValueError:
        raise ApplicationError("That is not a valid URL.", field="url") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ApplicationError("Only http:// and https:// addresses can be imported.", field="url")
    if parts.username is not None or parts.password is not None:
        raise ApplicationError(
            "Addresses with a user name or password are not imported.", field="url"
        )
    if not parts.hostname:
        raise ApplicationError("The URL has no host.", field="url")
    try:
        _URL_SYNTAX(url)
    except ValidationError:
        raise ApplicationError(
            "That is not a valid web address; check the host name.", field="url"
        ) from None
    _check_literal_host(parts.hostname)
    return url


def _check_literal_host(host: str) -> None:
    """A host that is a private address by itself (the fetcher checks resolved names too)."""
    if host == "localhost" or host.endswith(".localhost"):
        address = ipaddress.ip_address("127.0.0.1")  # RFC 6761: always loopback
    else:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    allowed = [ipaddress.ip_network(n, strict=False) for n in settings.FETCH_ALLOWED_NETWORKS]
    if any(address in network for network in allowed):
        return
    if not address.is_global or address.is_multicast:
        raise ApplicationError(
            f"That address points into a private network ({host}); it is not fetched.",
            field="url",
        )


def url_title(url: str) -> str:
    """A title for a page imported without one: its address without the scheme."""
    return clean_title(url.split("://", 1)[-1].rstrip("/"))


@dataclass(frozen=True, slots=True)
class Page:
    url: str  # after redirects
    data: bytes
    filename: str
    mime: str


_UNDECLARED = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_TEXT_FORMATS = frozenset({"text/html", "text/markdown", "text/x-markdown"})


def page_fetch(url: str, *, limits: DocumentLimits) -> Page:
    """GET a URL document's page through the SSRF-safe fetcher and check it is a readable
    document within the plan's size; raise ApplicationError with a reason a person
    understands (FetchError, DocumentTooLarge, ParseError)."""
    fetched = fetch_url(url)
    if not 200 <= fetched.status < 300:
        raise FetchError(
            f"The server answered {fetched.status} ({_phrase(fetched.status)}) instead of the "
            "page; check that the URL is right and the page is public."
        )
    if not fetched.data:
        raise FetchError("The server answered with an empty page.")
    if len(fetched.data) > limits.max_file_bytes:
        raise DocumentTooLarge(
            f"The page is {human_size(len(fetched.data))}; the {limits.plan} plan allows "
            f"documents of at most {human_size(limits.max_file_bytes)}.",
            field="url",
        )
    filename = _page_filename(fetched.url)
    mime = _page_mime(fetched.content_type, fetched.data, filename)
    return Page(url=fetched.url, data=fetched.data, filename=filename, mime=mime)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unknown status"


def _page_filename(url: str) -> str:
    parts = urlsplit(url)
    last = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
    return clean_filename(last or parts.hostname or "")


def _page_mime(content_type: str, data: bytes, filename: str) -> str:
    """The type the page is parsed as: the declared one if a parser reads it (any other
    text/* as plain text), the name's or the first bytes' when none is declared."""
    declared = content_type.split(";", 1)[0].strip().lower()
    mime: str | None = declared
    if declared in _UNDECLARED:
        mime = None
    elif declared.startswith("text/") and declared not in _TEXT_FORMATS:
        mime = "text/plain"
    try:
        fmt = detect_format(
            data[:SNIFF_BYTES], filename=filename if mime is None else "", mime=mime
        )
    except ParseError:
        kind = f"“{declared}”" if declared else "of no declared type"
        raise ParseError(
            f"The page is {kind}, not text: only HTML, PDF, Markdown and plain-text pages can "
            "be imported."
        ) from None
    return FORMAT_MIME[fmt]
