"""parse_document: every format path, and every bad input failing as a ParseError a person can read.

PDFs are generated here with pypdf's writer (text drawn with a standard font, an inline image,
encryption), so no binary fixtures are checked in."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.generic import ContentStream, DictionaryObject, NameObject

from apps.common.errors import ApplicationError
from apps.rag.ingest.parse import Block, ParseError, detect_format, parse_document

SAMPLES = Path(__file__).parent / "samples"
FRENCH = (
    "Le café de la gare sert une crème brûlée délicieuse.\n\n"
    "Les élèves naïfs déjeunent près de la façade de l'hôtel; ça coûte très cher.\n"
)


def _escape(text: str) -> bytes:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")


def make_pdf(pages: list[list[str]], *, image_only: bool = False) -> PdfWriter:
    """A PDF whose pages show the given lines (Helvetica; an empty string is a blank line)."""
    writer = PdfWriter()
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        if image_only:  # a 2x2 grey inline image, as a scanner would leave (no text operators)
            content = b"q 200 0 0 200 72 500 cm BI /W 2 /H 2 /CS /G /BPC 8 ID \x10\x80\xc0\xff EI Q"
        else:
            shown = b" 0 -14 Td ".join(b"(" + _escape(line or " ") + b") Tj" for line in lines)
            content = b"BT /F1 12 Tf 72 720 Td " + shown + b" ET"
        stream = ContentStream(None, None)
        stream.set_data(content)
        page.replace_contents(stream)
    return writer


def pdf_bytes(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --- PDF ---------------------------------------------------------------------------------------


def test_pdf_pages_are_kept_and_split_into_paragraphs_at_blank_lines():
    # Given a two-page PDF whose first page has two paragraphs
    data = pdf_bytes(
        make_pdf([["Intro line one.", "Intro line two.", "", "Second paragraph."], ["Page two."]])
    )

    # When it is parsed
    doc = parse_document(data, filename="report.pdf", mime="application/pdf")

    # Then each paragraph is a block carrying its 1-based page
    assert doc.format == "pdf"
    assert doc.page_count == 2
    assert [(b.kind, b.text, b.page) for b in doc.blocks] == [
        ("paragraph", "Intro line one.\nIntro line two.", 1),
        ("paragraph", "Second paragraph.", 1),
        ("paragraph", "Page two.", 2),
    ]


def test_pdf_is_recognised_by_its_magic_bytes_without_mime_or_extension():
    # Given a PDF uploaded under a name without extension and a generic mime
    data = pdf_bytes(make_pdf([["Sniffed."]]))

    # When it is parsed
    doc = parse_document(data, filename="download", mime="application/octet-stream")

    # Then the content identified it
    assert doc.format == "pdf"
    assert doc.blocks == [Block("paragraph", "Sniffed.", page=1)]


def test_pdf_locked_only_against_editing_opens_with_the_empty_password():
    # Given a PDF with an owner password but an empty user password
    writer = make_pdf([["Readable by anyone."]])
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="RC4-128")

    # When it is parsed
    doc = parse_document(pdf_bytes(writer), filename="locked.pdf")

    # Then its text is there
    assert [b.text for b in doc.blocks] == ["Readable by anyone."]


def test_password_protected_pdf_is_refused():
    # Given a PDF that needs a password to open
    writer = make_pdf([["Secret plans."]])
    writer.encrypt(user_password="hunter2", algorithm="RC4-128")

    # When it is parsed, then the error says so
    with pytest.raises(ParseError, match="this PDF is password-protected"):
        parse_document(pdf_bytes(writer), filename="secret.pdf")


def test_scanned_pdf_without_a_text_layer_fails_clearly():
    # Given a PDF whose only page is an image
    data = pdf_bytes(make_pdf([[]], image_only=True))

    # When it is parsed, then it fails rather than yielding an empty document
    with pytest.raises(ParseError, match="No text found in this PDF"):
        parse_document(data, filename="scan.pdf")


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> garbage \x00\x01\x02",
        b"%PDF-1.4\n" + b"\xde\xad\xbe\xef" * 64,
        b"this is not a pdf at all",
    ],
    ids=["truncated", "binary-junk", "not-a-pdf"],
)
def test_corrupt_pdf_fails_as_a_parse_error(data: bytes):
    # Given bytes declared as a PDF that are not a readable one
    # When they are parsed, then pypdf's exception is translated
    with pytest.raises(ParseError, match="could not be read as a PDF") as caught:
        parse_document(data, filename="broken.pdf", mime="application/pdf")
    assert isinstance(caught.value, ApplicationError)


@pytest.mark.parametrize("keep", [0.25, 0.5, 0.97])
def test_truncated_real_pdf_fails_as_a_parse_error(keep: float):
    # Given a valid three-page PDF cut short, as an interrupted upload would leave it
    data = pdf_bytes(make_pdf([["Half of me."]] * 3))
    cut = data[: int(len(data) * keep)]

    # When it is parsed, then pypdf's complaint surfaces as a readable ParseError
    with pytest.raises(ParseError, match="could not be read as a PDF"):
        parse_document(cut, filename="half.pdf")


def test_zero_byte_pdf_is_reported_as_empty():
    with pytest.raises(ParseError, match="is empty"):
        parse_document(b"", filename="nothing.pdf", mime="application/pdf")


def test_pdf_over_the_page_limit_is_refused():
    # Given a three-page PDF and a two-page limit
    data = pdf_bytes(make_pdf([["One."], ["Two."], ["Three."]]))

    # When it is parsed, then the limit is named
    with pytest.raises(ParseError, match="has 3 pages; the limit is 2"):
        parse_document(data, filename="long.pdf", max_pages=2)


def test_pdf_over_the_character_limit_is_refused():
    data = pdf_bytes(make_pdf([["x" * 60], ["y" * 60]]))

    with pytest.raises(ParseError, match="more than 100 characters"):
        parse_document(data, filename="big.pdf", max_chars=100)


# --- HTML --------------------------------------------------------------------------------------


def test_html_keeps_main_content_and_headings_and_drops_nav_script_and_footer():
    # Given an article page with navigation, scripts, styles and a footer
    data = (SAMPLES / "article.html").read_bytes()

    # When it is parsed
    doc = parse_document(data, filename="article.html", mime="text/html; charset=utf-8")
    text = "\n".join(b.text for b in doc.blocks)

    # Then the headings, prose, list and table remain, in order
    assert doc.format == "html"
    headings = [(b.level, b.text) for b in doc.blocks if b.kind == "heading"]
    assert headings == [(1, "Installing Widgetctl"), (2, "On Linux"), (2, "On macOS")]
    assert {b.kind for b in doc.blocks} >= {"paragraph", "list", "table"}
    table = next(b for b in doc.blocks if b.kind == "table")
    assert "Debian" in table.text
    assert "widgetctl.rpm" in table.text
    # And nothing from navigation, scripts, styles or the footer, and no markup
    for absent in ("Pricing menu link", "page-view-secret-token", "injected-by-script"):
        assert absent not in text
    assert "font-family" not in text
    assert "Privacy policy" not in text
    assert "<" not in text


def test_html_without_readable_content_fails_clearly():
    data = b"<html><body><script>alert('x')</script></body></html>"

    with pytest.raises(ParseError, match="No readable text found in the HTML page"):
        parse_document(data, filename="empty.html")


def test_html_is_sniffed_from_a_doctype():
    data = (SAMPLES / "article.html").read_bytes()

    assert detect_format(data, filename="page", mime=None) == "html"


# --- Markdown and text -------------------------------------------------------------------------


def test_markdown_headings_lists_tables_and_code_become_blocks():
    # Given a Markdown guide
    data = (SAMPLES / "guide.md").read_bytes()

    # When it is parsed
    doc = parse_document(data, filename="guide.md")

    # Then each top-level construct is one block, in order, nested list items with their parent
    assert [(b.kind, b.level) for b in doc.blocks] == [
        ("heading", 1),
        ("paragraph", None),
        ("heading", 2),
        ("paragraph", None),
        ("list", None),
        ("table", None),
        ("code", None),
        ("heading", 3),
        ("list", None),
        ("paragraph", None),
    ]
    by_kind = {b.kind: b for b in doc.blocks}
    assert by_kind["code"].text == "widgetctl --version"
    assert by_kind["table"].text.splitlines()[0] == "| System | Package |"
    first_list = doc.blocks[4].text
    assert "older releases need the legacy repository" in first_list
    # And raw HTML is not kept as markup
    assert all("<div" not in b.text for b in doc.blocks)
    assert all(b.page is None for b in doc.blocks)


def test_plain_text_paragraphs_split_at_blank_lines():
    data = b"First paragraph\nstill first.\r\n\r\n  \nSecond paragraph."

    doc = parse_document(data, filename="notes.txt", mime="text/plain")

    assert doc.format == "text"
    assert [b.text for b in doc.blocks] == ["First paragraph\nstill first.", "Second paragraph."]


@pytest.mark.parametrize(
    "codec", ["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-8-sig", "utf-8"]
)
def test_text_encodings_are_detected(codec: str):
    # Given French text in various encodings
    data = FRENCH.encode(codec)

    # When it is parsed
    doc = parse_document(data, filename="menu.txt")

    # Then the accents survive
    assert "\n\n".join(b.text for b in doc.blocks) == FRENCH.strip()


def test_short_latin1_markdown_is_not_mistaken_for_utf16():
    doc = parse_document("# Café\n\nCrème brûlée.".encode("latin-1"), filename="m.md")

    assert [b.text for b in doc.blocks] == ["Café", "Crème brûlée."]


def test_binary_bytes_called_text_are_refused():
    data = bytes(range(256)) * 8

    with pytest.raises(ParseError, match="not readable text"):
        parse_document(data, filename="blob.txt")


def test_whitespace_only_text_has_no_text():
    with pytest.raises(ParseError, match="No text found"):
        parse_document(b" \n\t\n ", filename="blank.txt")


def test_text_over_the_character_limit_is_refused():
    with pytest.raises(ParseError, match="more than 10 characters"):
        parse_document(b"a" * 11, filename="long.txt", max_chars=10)


# --- Types -------------------------------------------------------------------------------------


def test_unsupported_type_names_the_supported_ones():
    # Given a Word document
    data = b"PK\x03\x04 word/document.xml"

    # When it is parsed, then the error lists what is accepted
    with pytest.raises(ParseError, match="not a supported file type") as caught:
        parse_document(data, filename="report.docx", mime="application/vnd.ms-word")
    assert "PDF" in caught.value.message
    assert "Markdown" in caught.value.message


@pytest.mark.parametrize(
    ("filename", "mime", "expected"),
    [
        ("x.bin", "application/pdf", "pdf"),
        ("x.md", "text/plain", "text"),  # the declared type wins over the extension
        ("x.MD", None, "markdown"),
        ("x.htm", "application/octet-stream", "html"),
        ("notes.txt", None, "text"),
    ],
)
def test_type_detection_order_is_mime_then_extension(
    filename: str, mime: str | None, expected: str
):
    assert detect_format(b"anything", filename=filename, mime=mime) == expected
