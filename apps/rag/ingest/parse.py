"""Bytes to an ordered list of structural blocks: PDF, HTML, Markdown and plain text.

The blocks (headings, paragraphs, lists, tables, code) let the chunker cut at structure instead
of at arbitrary character counts. Every failure a user can cause — an empty, damaged, locked or
scanned file, an unknown type, undecodable text, a file too large — surfaces as `ParseError`
with a message fit to show them; library exceptions never escape.
"""

from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Literal

import charset_normalizer
import pypdf
import trafilatura
from markdown_it import MarkdownIt
from markdown_it.token import Token
from pypdf import PasswordType

from apps.common.errors import ApplicationError

BlockKind = Literal["heading", "paragraph", "list", "table", "code"]
Format = Literal["pdf", "html", "markdown", "text"]

MAX_PAGES = 2000
MAX_CHARS = 5_000_000

# fmt: off
_BY_MIME: dict[str, Format] = {
    "application/pdf": "pdf", "text/html": "html", "application/xhtml+xml": "html",
    "text/markdown": "markdown", "text/x-markdown": "markdown", "text/plain": "text",
}
_BY_EXTENSION: dict[str, Format] = {
    ".pdf": "pdf", ".html": "html", ".htm": "html", ".xhtml": "html",
    ".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text",
}
# UTF-32 before UTF-16: the UTF-32-LE mark begins with the UTF-16-LE one.
_BOMS = [
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
]
# fmt: on
SUPPORTED = "PDF (.pdf), HTML (.html, .htm), Markdown (.md, .markdown) and plain text (.txt)"

_BLANK_LINE = re.compile(r"\n[ \t\f\v]*\n\s*")
_HTML_START = re.compile(rb"^\s*(<!doctype html|<html)", re.IGNORECASE)
# Control characters other than tab, newline, carriage return and form feed: decoded "text"
# full of them is a binary file that some codec happened to accept.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_UTF16_32 = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"]


class ParseError(ApplicationError):
    """A document that cannot be turned into text; the message says why, for the uploader."""

    code = "unparseable_document"


@dataclass(frozen=True, slots=True)
class Block:
    kind: BlockKind
    text: str
    level: int | None = None  # headings only: 1 for "#", 2 for "##", …
    page: int | None = None  # PDF page, 1-based; None for other formats


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    format: Format
    blocks: list[Block] = field(default_factory=list)
    page_count: int | None = None  # PDFs only


def parse_document(
    data: bytes,
    *,
    filename: str,
    mime: str | None = None,
    max_pages: int = MAX_PAGES,
    max_chars: int = MAX_CHARS,
) -> ParsedDocument:
    """Parse `data`, typed by `mime`, else by `filename`'s extension, else by its content."""
    if not data:
        raise ParseError(f"“{filename}” is empty.")
    fmt = detect_format(data, filename=filename, mime=mime)
    if fmt == "pdf":
        return _parse_pdf(data, filename=filename, max_pages=max_pages, max_chars=max_chars)
    text = _decode(data, filename=filename)
    if len(text) > max_chars:
        raise ParseError(_too_long(filename, max_chars))
    if fmt == "html":
        blocks = markdown_blocks(_html_to_markdown(text, filename=filename))
    elif fmt == "markdown":
        blocks = markdown_blocks(text)
    else:
        blocks = [Block("paragraph", p) for p in _paragraphs(text)]
    if not blocks:
        raise ParseError(f"No text found in “{filename}”.")
    return ParsedDocument(format=fmt, blocks=blocks)


def detect_format(data: bytes, *, filename: str, mime: str | None = None) -> Format:
    """The declared type wins, then the extension; sniffing is the last resort because
    browsers often send `application/octet-stream` and names can lack an extension."""
    if mime:
        fmt = _BY_MIME.get(mime.split(";", 1)[0].strip().lower())
        if fmt:
            return fmt
    fmt = _BY_EXTENSION.get(PurePath(filename).suffix.lower())
    if fmt:
        return fmt
    if data.startswith(b"%PDF-"):
        return "pdf"
    if _HTML_START.match(data[:1024]):
        return "html"
    declared = f" ({mime})" if mime else ""
    raise ParseError(
        f"“{filename}”{declared} is not a supported file type. Supported: {SUPPORTED}."
    )


# --- PDF ---------------------------------------------------------------------------------------


def _parse_pdf(data: bytes, *, filename: str, max_pages: int, max_chars: int) -> ParsedDocument:
    # pypdf raises a zoo of exceptions on damaged files (PdfReadError, but also ValueError,
    # KeyError, struct errors, recursion…) and may raise lazily on page access, so the whole
    # read is guarded; our own ParseErrors pass through untouched.
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            # Many PDFs are "encrypted" with an empty user password only to restrict printing;
            # those open fine. Anything else needs a password we do not have.
            raise ParseError(
                f"“{filename}”: this PDF is password-protected. "
                "Remove the password and upload it again."
            )
        page_count = len(reader.pages)
        if page_count > max_pages:
            raise ParseError(f"“{filename}” has {page_count} pages; the limit is {max_pages}.")
        blocks: list[Block] = []
        total = 0
        for number, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").replace("\r\n", "\n").replace("\x00", "")
            total += len(text)
            if total > max_chars:
                raise ParseError(_too_long(filename, max_chars))
            # pypdf yields plain text per page: blank lines are its only paragraph signal.
            blocks.extend(Block("paragraph", p, page=number) for p in _paragraphs(text))
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(
            f"“{filename}” could not be read as a PDF; the file may be damaged."
        ) from exc
    if not blocks:
        raise ParseError(
            f"No text found in this PDF (“{filename}”). If it is a scan, run it through OCR first."
        )
    return ParsedDocument(format="pdf", blocks=blocks, page_count=page_count)


# --- Text, encodings and HTML ------------------------------------------------------------------


def _decode(data: bytes, *, filename: str) -> str:
    # A BOM is authoritative; strict UTF-8 next (most uploads, and detection can misread short
    # UTF-8); charset-normalizer only for the rest.
    for bom, codec in _BOMS:
        if data.startswith(bom):
            text = _try_decode(data, codec)
            break
    else:
        text = _try_decode(data, "utf-8")
        if text is None:
            # Without NUL bytes the text is not UTF-16/32 (ASCII-heavy UTF-16 is half NULs), and
            # excluding them stops short Latin-1 text being "detected" as UTF-16 mojibake.
            exclude = [] if b"\x00" in data else _UTF16_32
            text = _detect(data, exclude)
    if text is None or len(_CONTROL.findall(text)) > max(1, len(text) // 100):
        raise ParseError(f"“{filename}” is not readable text (its encoding could not be detected).")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _detect(data: bytes, exclude: list[str]) -> str | None:
    matches = charset_normalizer.from_bytes(data, cp_exclusion=exclude)
    best = matches.best()
    if best is None:
        return None
    # Short accented text often fits several single-byte codecs equally well (cp1250 reads
    # "crème" as "crčme" with the same score); on a tie, Windows-1252 — the web's default for
    # undeclared text — is the likeliest, and the choice stays deterministic.
    for match in matches:
        if match.encoding == "cp1252" and (match.chaos, match.coherence) == (
            best.chaos,
            best.coherence,
        ):
            return str(match)
    return str(best)


def _try_decode(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def _html_to_markdown(html: str, *, filename: str) -> str:
    # trafilatura drops navigation, footers, scripts and styles and returns the main content;
    # Markdown output keeps headings, lists and tables, which the Markdown path then reads. It
    # never runs scripts, and markup does not survive into the blocks.
    try:
        markdown = trafilatura.extract(
            html,
            output_format="markdown",
            include_tables=True,
            include_comments=False,
            include_formatting=True,
            include_links=False,
            include_images=False,
            favor_recall=True,
            with_metadata=False,
        )
    except Exception as exc:
        raise ParseError(f"“{filename}” could not be read as HTML.") from exc
    if not markdown or not markdown.strip():
        raise ParseError(f"No readable text found in the HTML page “{filename}”.")
    return str(markdown)


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in _BLANK_LINE.split(text) if p.strip()]


def _too_long(filename: str, max_chars: int) -> str:
    return f"“{filename}” has more than {max_chars:,} characters of text, the limit per document."


# --- Markdown ----------------------------------------------------------------------------------

_CONTAINERS: dict[str, BlockKind] = {
    "bullet_list_open": "list",
    "ordered_list_open": "list",
    "table_open": "table",
    "blockquote_open": "paragraph",
}


def markdown_blocks(source: str) -> list[Block]:
    """Top-level Markdown blocks in order. Lists, tables and quotes keep their source lines
    (nested items stay with their parent); raw HTML blocks are dropped, since markup is not
    prose and must not end up in embeddings or citations."""
    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    lines = source.split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.type == "heading_open":
            text = tokens[i + 1].content.strip()
            if text:
                blocks.append(Block("heading", text, level=int(token.tag[1:])))
            i += 3
        elif token.type == "paragraph_open" and token.level == 0:
            text = tokens[i + 1].content.strip()
            if text:
                blocks.append(Block("paragraph", text))
            i += 3
        elif token.type in ("fence", "code_block"):
            if token.content.strip():
                blocks.append(Block("code", token.content.rstrip("\n")))
            i += 1
        elif token.type in _CONTAINERS:
            close = _matching_close(tokens, i)
            text = _source(lines, token).strip()
            if text:
                blocks.append(Block(_CONTAINERS[token.type], text))
            i = close + 1
        else:
            i += 1
    return blocks


def _matching_close(tokens: list[Token], start: int) -> int:
    depth = 0
    for j in range(start, len(tokens)):
        depth += tokens[j].nesting
        if depth == 0:
            return j
    return len(tokens) - 1


def _source(lines: list[str], token: Token) -> str:
    if token.map is None:  # not produced by the block parser; kept for type safety
        return token.content
    start, end = token.map
    return "\n".join(line.rstrip() for line in lines[start:end])
