"""Structure-aware chunking: parsed blocks to embeddable chunks that cite their headings and page.

Blocks are kept whole where they fit; consecutive small blocks under the same heading path are
merged up to `target_tokens`; a block over `max_tokens` is cut at sentence ends (lines for
lists, tables and code), then at words, then inside a word, with `overlap_tokens` of context
repeated between its pieces. Each chunk's `embed_text` starts with its heading path, so a
paragraph is retrieved and cited with the section it belongs to.

The splitter is our own rather than `semchunk`: it has to measure every piece *with* the heading
prefix against `count` (the prefix eats into the budget) and keep pieces as exact slices of the
source, and both are a few lines here but would mean wrapping semchunk's own counter. Output is
a pure function of the input: no randomness, no network, no model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .parse import Block, ParsedDocument

Count = Callable[[str], int]
Span = tuple[int, int]

HEADING_SEPARATOR = " > "

_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+|\n\s*")
_LINE_END = re.compile(r"\n")
_WHITESPACE = re.compile(r"\s+")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class Chunk:
    ordinal: int
    text: str  # the chunk's own text, without the heading path
    heading_path: tuple[str, ...]
    page: int | None  # the page the chunk is on (PDFs; chunks never span pages), else None
    token_count: int  # of embed_text
    embed_text: str  # heading path + "\n" + text: what is embedded and shown in citations
    content_hash: str  # sha256 of embed_text: re-indexing keeps chunks whose hash is unchanged


def chunk_document(
    doc: ParsedDocument,
    *,
    count: Count,
    target_tokens: int = 200,
    max_tokens: int = 256,
    overlap_tokens: int = 30,
) -> list[Chunk]:
    """Chunks of `doc` in reading order; every chunk's `embed_text` is at most `max_tokens`."""
    if not 0 < target_tokens <= max_tokens:
        raise ValueError("need 0 < target_tokens <= max_tokens")
    if not 0 <= overlap_tokens < max_tokens // 2:
        raise ValueError("need 0 <= overlap_tokens < max_tokens / 2")
    pieces = _pieces(doc.blocks, count, target_tokens, max_tokens, overlap_tokens)
    chunks = []
    for ordinal, (path, text, page) in enumerate(pieces):
        embed = _prefix(path, count, max_tokens) + text
        chunks.append(
            Chunk(
                ordinal=ordinal,
                text=text,
                heading_path=path,
                page=page,
                token_count=count(embed),
                embed_text=embed,
                content_hash=hashlib.sha256(embed.encode("utf-8")).hexdigest(),
            )
        )
    return chunks


def _pieces(
    blocks: list[Block], count: Count, target: int, limit: int, overlap: int
) -> Iterator[tuple[tuple[str, ...], str, int | None]]:
    """(heading path, text, page) per chunk: merge small neighbours, split what is too big."""
    headings: list[tuple[int, str]] = []
    pending: list[Block] = []
    path: tuple[str, ...] = ()

    def flush() -> Iterator[tuple[tuple[str, ...], str, int | None]]:
        if pending:
            yield path, "\n\n".join(b.text for b in pending), pending[0].page
            pending.clear()

    for block in blocks:
        if block.kind == "heading":
            # A heading ends the merge run and becomes part of the path of what follows; it is
            # not a chunk of its own (a bare title says nothing a search could use).
            yield from flush()
            level = block.level or 1
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, block.text))
            path = tuple(text for _, text in headings)
            continue
        prefix = _prefix(path, count, limit)
        merged = "\n\n".join([*(b.text for b in pending), block.text])
        # A page break ends a merge run too: a citation names the one page its chunk is on.
        if pending and pending[-1].page == block.page and count(prefix + merged) <= target:
            pending.append(block)
        elif count(prefix + block.text) <= limit:
            yield from flush()
            pending.append(block)
        else:
            yield from flush()
            for text in split_text(block.text, block.kind, prefix, count, limit, overlap):
                yield path, text, block.page
    yield from flush()


def _prefix(path: tuple[str, ...], count: Count, limit: int) -> str:
    """The heading path line. Absurdly long headings would leave no room for the text, so the
    prefix is held to half the budget: outer headings go first, then the innermost is cut."""
    parts = list(path)
    while parts:
        prefix = HEADING_SEPARATOR.join(parts) + "\n"
        if count(prefix) <= limit // 2:
            return prefix
        if len(parts) > 1:
            parts.pop(0)
        else:
            words = parts[0].split()
            if len(words) <= 1:
                return ""
            parts[0] = " ".join(words[: len(words) // 2]) + " …"
    return ""


def split_text(
    text: str, kind: str, prefix: str, count: Count, limit: int, overlap: int
) -> list[str]:
    """Slices of `text`, each fitting `limit` with `prefix`, consecutive ones sharing up to
    `overlap` tokens (whole sentences where they fit, else trailing words)."""

    def fits(span: Span) -> bool:
        return count(prefix + text[span[0] : span[1]]) <= limit

    first = _LINE_END if kind in ("list", "table", "code") else _SENTENCE_END
    units = _atoms((0, len(text)), text, fits, [first, _WHITESPACE])
    pieces: list[str] = []
    start = 0  # index of the piece's first unit
    while start < len(units):
        begin = units[start][0]
        end = start
        while end + 1 < len(units) and fits((begin, units[end + 1][1])):
            end += 1
        pieces.append(text[begin : units[end][1]])
        if end + 1 == len(units):
            break
        begin_next = _overlap_start(text, units, start, end, count, overlap)
        if begin_next is not None and fits((begin_next, units[end + 1][1])):
            # The next piece opens with the tail of this one; `units` holds spans, so a new
            # unit list is not needed: the overlap is a span start inside the current piece.
            units[end + 1] = (begin_next, units[end + 1][1])
        start = end + 1
    return pieces


def _atoms(
    span: Span, text: str, fits: Callable[[Span], bool], patterns: list[re.Pattern[str]]
) -> list[Span]:
    """Cut `span` at the first pattern's boundaries, recursing with the next pattern into any
    part that still does not fit; a single over-long word is cut by characters."""
    if fits(span):
        return [span]
    if not patterns:
        return _cut_characters(span, fits)
    atoms: list[Span] = []
    for part in _parts(span, text, patterns[0]):
        atoms.extend(_atoms(part, text, fits, patterns[1:]))
    return atoms


def _parts(span: Span, text: str, boundary: re.Pattern[str]) -> list[Span]:
    start, stop = span
    parts: list[Span] = []
    for match in boundary.finditer(text, start, stop):
        if text[start : match.start()].strip():
            parts.append((start, match.start()))
        start = match.end()
    if text[start:stop].strip():
        parts.append((start, stop))
    return parts


def _cut_characters(span: Span, fits: Callable[[Span], bool]) -> list[Span]:
    start, stop = span
    parts: list[Span] = []
    while start < stop:
        lo, hi = start + 1, stop  # the longest prefix that fits, by binary search
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits((start, mid)) else (lo, mid - 1)
        parts.append((start, lo))
        start = lo
    return parts


def _overlap_start(
    text: str, units: list[Span], start: int, end: int, count: Count, overlap: int
) -> int | None:
    """Where the next piece should begin so that it repeats up to `overlap` tokens of this one:
    the earliest whole unit that fits, else the earliest word start that fits."""
    if overlap <= 0:
        return None
    stop = units[end][1]
    for i in range(start + 1, end + 1):
        if count(text[units[i][0] : stop]) <= overlap:
            return units[i][0]
    words = [m.start() for m in _WORD.finditer(text, units[end][0], stop)]
    for word_start in words[1:] if start == end else words:
        if count(text[word_start:stop]) <= overlap:
            return word_start
    return None
