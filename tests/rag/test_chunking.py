"""chunk_document: structure kept, small blocks merged, big ones split with overlap, headings
prepended, pages carried, hashes stable. Token counts come from the gateway's real counter."""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path

import pytest

from apps.llm.services import count_tokens
from apps.rag.ingest.chunk import Chunk, chunk_document
from apps.rag.ingest.parse import Block, ParsedDocument, parse_document

SAMPLES = Path(__file__).parent / "samples"


def sentences(n: int, topic: str = "widget") -> str:
    return " ".join(
        f"Sentence {i} explains how the {topic} behaves when the operator changes setting {i}."
        for i in range(n)
    )


def doc_of(*blocks: Block, fmt: str = "markdown") -> ParsedDocument:
    return ParsedDocument(format=fmt, blocks=list(blocks))  # type: ignore[arg-type]


def chunk(doc: ParsedDocument, **kwargs: int) -> list[Chunk]:
    return chunk_document(doc, count=count_tokens, **kwargs)


def test_heading_path_is_prepended_and_follows_heading_levels():
    # Given sections nested two deep, then a sibling section
    doc = doc_of(
        Block("heading", "Install", level=1),
        Block("heading", "On Linux", level=2),
        Block("paragraph", "Unpack the archive."),
        Block("heading", "On macOS", level=2),
        Block("paragraph", "Use Homebrew."),
    )

    # When it is chunked
    chunks = chunk(doc)

    # Then each chunk carries the headings above it, and embeds them before its own text
    assert [(c.heading_path, c.text) for c in chunks] == [
        (("Install", "On Linux"), "Unpack the archive."),
        (("Install", "On macOS"), "Use Homebrew."),
    ]
    assert chunks[0].embed_text == "Install > On Linux\nUnpack the archive."
    assert [c.ordinal for c in chunks] == [0, 1]


def test_small_blocks_merge_up_to_the_target_but_not_across_headings():
    # Given many short paragraphs under one heading, then one under another heading
    paragraphs = [Block("paragraph", f"Short note number {i} about widgets.") for i in range(30)]
    doc = doc_of(
        Block("heading", "Notes", level=1), *paragraphs, Block("heading", "Other", level=1)
    )
    doc.blocks.append(Block("paragraph", "Different section."))

    # When it is chunked with a target of 60 tokens
    chunks = chunk(doc, target_tokens=60, max_tokens=100, overlap_tokens=10)

    # Then paragraphs are merged whole, never split, none over the target, none across headings
    notes = [c for c in chunks if c.heading_path == ("Notes",)]
    assert 1 < len(notes) < 30
    assert all(c.token_count <= 60 for c in notes)
    merged = [p for c in notes for p in c.text.split("\n\n")]
    assert merged == [p.text for p in paragraphs]
    assert chunks[-1].text == "Different section."
    assert chunks[-1].heading_path == ("Other",)


def test_a_table_that_fits_is_kept_whole_in_one_chunk():
    # Given a table between two long paragraphs
    table = "| Name | Value |\n|---|---|\n" + "\n".join(f"| key{i} | {i * 7} |" for i in range(12))
    doc = doc_of(
        Block("paragraph", sentences(8)),
        Block("table", table),
        Block("paragraph", sentences(8, "gadget")),
    )

    # When it is chunked
    chunks = chunk(doc)

    # Then exactly one chunk contains the table, and it contains all of it
    holders = [c for c in chunks if "key0" in c.text or "key11" in c.text]
    assert len(holders) == 1
    assert table in holders[0].text


def test_a_long_paragraph_is_split_at_sentences_with_overlap():
    # Given a paragraph far above the token limit
    text = sentences(60)
    doc = doc_of(Block("heading", "Behaviour", level=1), Block("paragraph", text))

    # When it is chunked
    chunks = chunk(doc, target_tokens=100, max_tokens=120, overlap_tokens=30)

    # Then every piece fits, including the heading prefix
    assert len(chunks) > 3
    assert all(c.token_count <= 120 for c in chunks)
    assert all(c.token_count == count_tokens(c.embed_text) for c in chunks)
    assert all(c.embed_text.startswith("Behaviour\n") for c in chunks)
    # And pieces end at sentence ends
    assert all(c.text.endswith(".") for c in chunks)
    # And each piece begins with the tail of the previous one (at most 30 tokens of it)
    for before, after in itertools.pairwise(chunks):
        shared = _longest_suffix_prefix(before.text, after.text)
        assert shared, (before.text, after.text)
        assert 0 < count_tokens(shared) <= 30
    # And nothing is lost: every sentence appears in some piece
    for i in range(60):
        assert any(f"setting {i}." in c.text for c in chunks)


def test_without_overlap_the_pieces_partition_the_text():
    text = sentences(40)
    chunks = chunk(
        doc_of(Block("paragraph", text)), max_tokens=80, target_tokens=80, overlap_tokens=0
    )

    assert " ".join(c.text for c in chunks) == text


def test_a_sentence_longer_than_the_limit_is_split_at_words_and_a_huge_word_by_characters():
    # Given one run-on sentence and one 3,000-character token
    run_on = " ".join(f"word{i}" for i in range(400))
    blob = "x9" * 1500
    doc = doc_of(Block("paragraph", run_on), Block("paragraph", blob))

    # When it is chunked
    chunks = chunk(doc, target_tokens=50, max_tokens=64, overlap_tokens=8)

    # Then every chunk fits and all content is still present
    assert all(c.token_count <= 64 for c in chunks)
    words = {w for c in chunks for w in c.text.split()}
    assert {f"word{i}" for i in range(400)} <= words
    blob_pieces = [c.text for c in chunks if c.text.startswith("x9") or c.text.startswith("9x")]
    assert len(blob_pieces) > 1
    assert "".join(blob_pieces) == blob  # cut inside the word: no overlap to repeat


def test_long_code_is_split_at_line_ends():
    # Given a code block far above the limit
    code = "\n".join(f"result_{i} = compute(value_{i}, factor={i})" for i in range(80))

    # When it is chunked
    chunks = chunk(doc_of(Block("code", code)), max_tokens=100, target_tokens=100, overlap_tokens=0)

    # Then each piece is whole lines of the original
    assert len(chunks) > 1
    lines = code.splitlines()
    for c in chunks:
        assert all(line in lines for line in c.text.splitlines())
    assert "\n".join(c.text for c in chunks) == code


def test_page_numbers_are_carried_and_a_chunk_never_spans_two_pages():
    # Given PDF paragraphs on pages 1, 2 and 3, the third long enough to be split
    doc = doc_of(
        Block("paragraph", "Page one text.", page=1),
        Block("paragraph", "More of page one.", page=1),
        Block("paragraph", "Page two text.", page=2),
        Block("paragraph", sentences(40), page=3),
        fmt="pdf",
    )

    # When it is chunked
    chunks = chunk(doc)

    # Then small paragraphs merge within a page but not across one (a citation names one
    # page), and every piece of the long one is on page 3
    assert (chunks[0].text, chunks[0].page) == ("Page one text.\n\nMore of page one.", 1)
    assert (chunks[1].text, chunks[1].page) == ("Page two text.", 2)
    assert len(chunks) > 3
    assert {c.page for c in chunks[2:]} == {3}
    assert all(c.heading_path == () and c.embed_text == c.text for c in chunks)


def test_hashes_are_sha256_of_embed_text_stable_and_change_only_where_content_changed():
    # Given a document chunked twice, and an edited copy
    blocks = [
        Block("heading", "A", level=1),
        Block("paragraph", sentences(10)),
        Block("heading", "B", level=1),
        Block("paragraph", sentences(10, "gadget")),
    ]
    edited = [*blocks[:3], Block("paragraph", sentences(10, "gizmo"))]

    # When each is chunked
    first, again, changed = chunk(doc_of(*blocks)), chunk(doc_of(*blocks)), chunk(doc_of(*edited))

    # Then the same input gives the same chunks, and only the edited section's hash moves
    assert first == again
    for c in first:
        assert c.content_hash == hashlib.sha256(c.embed_text.encode()).hexdigest()
    assert first[0].content_hash == changed[0].content_hash
    assert first[1].content_hash != changed[1].content_hash


def test_an_absurd_heading_path_is_shortened_so_text_still_fits():
    # Given headings that alone would exceed the limit
    doc = doc_of(
        Block("heading", "Outer " * 100, level=1),
        Block("heading", "Inner section title", level=2),
        Block("paragraph", "Body text."),
    )

    # When it is chunked
    [only] = chunk(doc, max_tokens=64, target_tokens=64, overlap_tokens=0)

    # Then the full path is recorded, but the embedded prefix keeps the innermost heading
    assert only.heading_path[1] == "Inner section title"
    assert only.embed_text == "Inner section title\nBody text."
    assert only.token_count <= 64


def test_a_parsed_markdown_guide_chunks_end_to_end():
    # Given the sample guide parsed from bytes
    doc = parse_document((SAMPLES / "guide.md").read_bytes(), filename="guide.md")

    # When it is chunked
    chunks = chunk(doc)

    # Then sections keep their paths and the table and code stay intact
    paths = [c.heading_path for c in chunks]
    assert ("Widgetctl guide", "Install") in paths
    assert ("Widgetctl guide", "Install", "Upgrading") in paths
    install = next(c for c in chunks if c.heading_path == ("Widgetctl guide", "Install"))
    assert "| Debian | widgetctl.deb |" in install.text
    assert "widgetctl --version" in install.text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_tokens": 300, "max_tokens": 256},
        {"target_tokens": 0},
        {"overlap_tokens": 128, "max_tokens": 256},
        {"overlap_tokens": -1},
    ],
)
def test_inconsistent_sizes_are_rejected(kwargs: dict[str, int]):
    with pytest.raises(ValueError, match="need"):
        chunk(doc_of(Block("paragraph", "x")), **kwargs)


def _longest_suffix_prefix(before: str, after: str) -> str:
    """The longest tail of `before` that `after` starts with (word-aligned)."""
    for match in re.finditer(r"\S+", before):
        tail = before[match.start() :]
        if after.startswith(tail):
            return tail
    return ""
