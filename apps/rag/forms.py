"""Forms of the Documents page: validation only; writes go through services.

An upload is checked before anything is stored, and refused whole when any file is at fault
(the message names each such file): a batch is added entirely or not at all. Sizes are checked
before the bytes are read where possible — the request's Content-Length first (`upload_refusal`),
then each file as it streams in (`FileSizeLimit` stops keeping a file past the limit). The
limits are the workspace's plan's (`DocumentLimits`), as the service enforces them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.forms.utils import ErrorDict

from apps.billing.plans import DocumentLimits

from .ingest.parse import ParseError, detect_format
from .intake import MAX_URL_CHARS, SNIFF_BYTES, clean_filename, human_size, text_document

MAX_FILES = 20  # files in one upload
BATCH_FILE_LIMITS = 5  # one upload carries at most this many maximal files, in bytes
ACCEPT = (
    ".pdf,.md,.markdown,.txt,.text,.html,.htm,.xhtml,"
    "application/pdf,text/markdown,text/plain,text/html"
)
NOTHING_ADDED = "Nothing was added: remove or fix the files named above and upload again."


def max_upload_bytes(limits: DocumentLimits) -> int:
    """The most one upload request may carry, all files together."""
    return limits.max_file_bytes * BATCH_FILE_LIMITS


def max_paste_bytes(limits: DocumentLimits) -> int:
    """Pasted text arrives as a form field: Django's field limit applies before the file one."""
    return min(limits.max_file_bytes, settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2**62)


def content_length(meta: dict[str, Any]) -> int:
    try:
        return max(0, int(meta.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def upload_refusal(meta: dict[str, Any], limits: DocumentLimits) -> str:
    """Why an upload of this size is refused before its body is read ("" when it is not)."""
    size, limit = content_length(meta), max_upload_bytes(limits)
    if size <= limit:
        return ""
    return (
        f"This upload is {human_size(size)}; one upload carries at most {human_size(limit)} "
        f"({human_size(limits.max_file_bytes)} per file on the {limits.plan} plan). "
        "Upload fewer files at a time. Nothing was added."
    )


PASTE_OVERHEAD_BYTES = 64 * 1024  # the title, the CSRF token and multipart boundaries


def paste_refusal(meta: dict[str, Any], limits: DocumentLimits) -> str:
    """Why pasted text is refused before the body is read ("" when it is not). The form is
    multipart: the text arrives as its UTF-8 bytes, not percent-encoded (up to 9× larger)."""
    if content_length(meta) <= max_paste_bytes(limits) + PASTE_OVERHEAD_BYTES:
        return ""
    return paste_too_long(limits)


def paste_too_long(limits: DocumentLimits) -> str:
    return (
        f"The text is too long to paste; at most {human_size(max_paste_bytes(limits))}. "
        "Save it as a file and upload it instead."
    )


def limits_help(limits: DocumentLimits) -> str:
    return (
        f"PDF, HTML, Markdown or plain text: up to {MAX_FILES} files and "
        f"{human_size(max_upload_bytes(limits))} at a time, "
        f"{human_size(limits.max_file_bytes)} per file on the {limits.plan} plan."
    )


class FileSizeLimit(FileUploadHandler):
    """First upload handler of an upload: a file growing past the plan's size limit is dropped
    as it streams (never written whole to memory or disk) and remembered in `too_large`."""

    def __init__(self, request: Any = None, *, max_file_bytes: int):
        super().__init__(request)
        self.limit = max_file_bytes
        self.too_large: dict[str, int] = {}  # file name → bytes received when dropped

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.too_large[self.file_name or "document"] = self.received
            raise SkipFile
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler (memory or temporary file) makes the file


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class RefusableForm(forms.Form):
    """A form that can be refused whole, before its data is read: `refused` is shown on
    `refused_field` and nothing else is checked."""

    refused_field = ""

    def __init__(self, *args: Any, refused: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.refused = refused

    def full_clean(self) -> None:
        if not self.refused:
            super().full_clean()
            return
        self._errors = ErrorDict()
        self.cleaned_data = {}
        self.add_error(self.refused_field, self.refused)


class UploadForm(RefusableForm):
    refused_field = "file"
    file = forms.Field(
        label="Files",
        required=False,  # checked in clean_file with a message that says what to do
        widget=MultipleFileInput(attrs={"multiple": True, "accept": ACCEPT}),
    )

    def __init__(
        self,
        *args: Any,
        limits: DocumentLimits,
        too_large: dict[str, int] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.too_large = too_large or {}
        self.fields["file"].help_text = limits_help(limits)

    def clean_file(self) -> list[UploadedFile]:
        files: list[UploadedFile] = list(self.files.getlist("file")) if self.files else []
        if not files and not self.too_large:
            raise forms.ValidationError("Choose one or more files to upload.")
        count = len(files) + len(self.too_large)
        if count > MAX_FILES:
            raise forms.ValidationError(
                f"You chose {count} files; upload at most {MAX_FILES} at a time. Nothing was added."
            )
        problems = [self._too_large(name, size) for name, size in self.too_large.items()]
        problems += [p for p in map(self._problem, files) if p]
        if problems:
            raise forms.ValidationError([*problems, NOTHING_ADDED])
        return files

    def _too_large(self, name: str, size: int) -> str:
        limit = human_size(self.limits.max_file_bytes)
        return (
            f"“{clean_filename(name)}” is over {limit}, the {self.limits.plan} plan's limit "
            "per file."
        )

    def _problem(self, upload: UploadedFile) -> str:
        name = clean_filename(upload.name or "")
        size = upload.size or 0
        if size <= 0:
            return f"“{name}” is empty."
        if size > self.limits.max_file_bytes:
            limit = human_size(self.limits.max_file_bytes)
            return (
                f"“{name}” is {human_size(size)}; the {self.limits.plan} plan allows {limit} "
                "per file."
            )
        upload.seek(0)
        head = upload.read(SNIFF_BYTES)
        upload.seek(0)
        try:
            detect_format(head, filename=name, mime=upload_mime(upload) or None)
        except ParseError as exc:
            return exc.message
        return ""


def upload_mime(upload: UploadedFile) -> str:
    """The type the browser declared, unless it is the say-nothing default."""
    mime = (upload.content_type or "").split(";", 1)[0].strip().lower()
    return "" if mime in ("", "application/octet-stream") else mime


class PasteForm(RefusableForm):
    refused_field = "text"
    FORMATS = (("txt", "Plain text (.txt)"), ("md", "Markdown (.md)"))

    title = forms.CharField(
        label="Title",
        max_length=300,
        error_messages={"required": "Give the text a title."},
        widget=forms.TextInput(attrs={"data-testid": "paste-title"}),
    )
    text = forms.CharField(
        label="Text",
        strip=False,
        error_messages={"required": "Paste some text to add."},
        widget=forms.Textarea(attrs={"rows": 8, "data-testid": "paste-text"}),
    )
    format = forms.ChoiceField(
        label="Format", choices=FORMATS, initial="txt", widget=forms.RadioSelect
    )

    def __init__(self, *args: Any, limits: DocumentLimits, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.limits = limits

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        if not title:
            raise forms.ValidationError("Give the text a title.")
        return title

    def clean_text(self) -> str:
        text: str = self.cleaned_data["text"]
        if not text.strip():
            raise forms.ValidationError("Paste some text to add; this is only blank space.")
        size, limit = len(text.encode()), max_paste_bytes(self.limits)
        if size > limit:
            raise forms.ValidationError(
                f"The text is {human_size(size)}; at most {human_size(limit)} can be pasted. "
                "Save it as a file and upload it instead."
            )
        return text

    def document_fields(self) -> dict[str, Any]:
        """What `document_add` needs for the cleaned text."""
        return text_document(
            title=self.cleaned_data["title"],
            text=self.cleaned_data["text"],
            markdown=self.cleaned_data["format"] == "md",
        )


class UrlForm(forms.Form):
    url = forms.CharField(
        label="Address",
        max_length=MAX_URL_CHARS,
        error_messages={
            "required": "Enter the address of a web page (https://…).",
            "max_length": f"The URL is too long; at most {MAX_URL_CHARS:,} characters.",
        },
        widget=forms.URLInput(
            attrs={"placeholder": "https://example.com/handbook", "data-testid": "url-input"}
        ),
        help_text=(
            "The page is fetched and its main content indexed (navigation and footers "
            "dropped). HTML, PDF, Markdown or plain text; public addresses only."
        ),
    )
    title = forms.CharField(
        label="Title (optional)",
        max_length=300,
        required=False,
        widget=forms.TextInput(attrs={"data-testid": "url-title"}),
    )
