"""The Documents pages: the list, uploads of one and several files, pasted text, every refused
input with its message (and nothing stored), a document's chunks, re-index, and who may delete."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django_tenants.utils import schema_context

from apps.rag.forms import MAX_FILES
from apps.rag.models import Document
from apps.rag.services import document_add, document_index
from apps.workspaces.models import Membership, Role, User, Workspace
from tests.conftest import host_client
from tests.factories import UserFactory
from tests.gateway_support import gateway_settings

from .conftest import OnPlan

pytestmark = pytest.mark.django_db

GUIDE = b"""# Ocelot guide

The ocelot service runs on port 7410.

## Backups

Backups run nightly at 02:00 UTC and are kept for 35 days.
"""


def _client(user: User) -> Client:
    return host_client("acme.localhost", user)


def _documents(acme: Workspace) -> list[Document]:
    with schema_context(acme.schema_name):
        return list(Document.objects.order_by("pk"))


def _add(acme: Workspace, user: User, name: str = "guide.md", data: bytes = GUIDE) -> Document:
    with schema_context(acme.schema_name):
        return document_add(user=user, data=data, filename=name, mime="text/markdown")


def _file(name: str, data: bytes = GUIDE, mime: str = "text/markdown") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=mime)


def _html(response: Any) -> str:
    return str(response.content.decode())


# --- the list ----------------------------------------------------------------------------


def test_an_empty_workspace_says_how_to_start(member: User) -> None:
    page = _client(member).get("/documents/")

    assert page.status_code == 200
    html = _html(page)
    assert 'data-testid="documents-empty"' in html
    assert 'type="file"' in html
    assert "multiple" in html
    assert 'enctype="multipart/form-data"' in html
    assert 'data-testid="nav-documents"' in html


def test_the_list_shows_documents_newest_first_with_their_facts(
    acme: Workspace, owner: User, member: User
) -> None:
    _add(acme, owner, "older.md")
    newer = _add(acme, member, "newer.md")
    with schema_context(acme.schema_name):
        Document.objects.filter(pk=newer.pk).update(
            status=Document.Status.FAILED, error="No text found in “newer.md”.", chunk_count=0
        )

    html = _html(_client(member).get("/documents/"))

    assert html.index("newer.md") < html.index("older.md")
    assert "member@acme.test" in html
    assert "owner@acme.test" in html
    assert "No text found in “newer.md”." in html
    assert 'data-status="failed"' in html
    assert 'data-status="queued"' in html
    assert "Upload" in html


def test_the_live_table_fragment_is_the_table_only(acme: Workspace, member: User) -> None:
    _add(acme, member)

    fragment = _client(member).get(
        "/documents/", headers={"HX-Request": "true", "HX-Target": "documents-table"}
    )

    html = _html(fragment)
    assert 'data-testid="documents-table"' in html
    assert "<html" not in html
    assert 'data-testid="upload-form"' not in html


# --- adding ------------------------------------------------------------------------------


def test_uploading_one_file_stores_it_and_queues_it(acme: Workspace, member: User) -> None:
    client = _client(member)
    response = client.post("/documents/upload/", {"file": _file("guide.md")})

    assert response.status_code == 302
    assert response["Location"] == "/documents/"
    [document] = _documents(acme)
    assert (document.title, document.source, document.status) == ("guide.md", "upload", "queued")
    assert document.created_by_id == member.pk
    assert document.size_bytes == len(GUIDE)
    page = client.get("/documents/")
    assert "Added 1 document: “guide.md”." in _html(page)


def test_uploading_several_files_at_once_stores_each(acme: Workspace, member: User) -> None:
    files = [_file("a.md"), _file("b.txt", b"Plain notes.", "text/plain"), _file("c.html", b"<p>x")]

    response = _client(member).post("/documents/upload/", {"file": files}, follow=True)

    assert {d.filename for d in _documents(acme)} == {"a.md", "b.txt", "c.html"}
    assert "Added 3 documents" in _html(response)


def test_a_path_in_a_file_name_is_dropped(acme: Workspace, member: User) -> None:
    _client(member).post("/documents/upload/", {"file": _file("../../etc/passwd.md")})

    [document] = _documents(acme)
    assert document.filename == "passwd.md"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([], "Choose one or more files to upload."),
        ([_file("empty.md", b"")], "“empty.md” is empty."),
        ([_file("report.docx", b"PK\x03\x04", "application/msword")], "not a supported file type"),
        (
            [_file(f"n{i}.md") for i in range(MAX_FILES + 1)],
            f"You chose {MAX_FILES + 1} files; upload at most {MAX_FILES} at a time.",
        ),
    ],
)
def test_a_bad_upload_is_explained_at_the_field_and_stores_nothing(
    acme: Workspace, member: User, files: list[SimpleUploadedFile], message: str
) -> None:
    response = _client(member).post("/documents/upload/", {"file": files})

    assert response.status_code == 400
    html = _html(response)
    assert message in html
    assert 'data-testid="upload-error"' in html
    assert _documents(acme) == []


def test_one_bad_file_refuses_the_whole_batch_and_names_it(acme: Workspace, member: User) -> None:
    files = [_file("good.md"), _file("empty.md", b""), _file("fine.txt", b"ok", "text/plain")]

    response = _client(member).post("/documents/upload/", {"file": files})

    html = _html(response)
    assert response.status_code == 400
    assert "“empty.md” is empty." in html
    assert "Nothing was added" in html
    assert "good.md" not in html.split('data-testid="upload-errors"')[1].split("</div>")[0]
    assert _documents(acme) == []


@override_settings(RAG_MAX_FILE_BYTES=2000)
def test_a_file_over_the_limit_is_dropped_as_it_streams_and_named(
    acme: Workspace, member: User, on_plan: OnPlan
) -> None:
    on_plan("pro")  # takes the setting
    # under the batch limit (5 × 2,000 bytes), so the body is read, but big.md is not kept
    files = [_file("big.md", b"x" * 3000), _file("small.md", b"# Small\n\nfine")]

    response = _client(member).post("/documents/upload/", {"file": files})

    assert response.status_code == 400
    assert "“big.md” is over 2,000 bytes, the Pro plan&#x27;s limit per file." in _html(response)
    assert _documents(acme) == []


@override_settings(RAG_MAX_FILE_BYTES=100)
def test_an_upload_over_the_batch_limit_is_refused_before_its_body_is_read(
    acme: Workspace, member: User, on_plan: OnPlan
) -> None:
    on_plan("pro")
    # Content-Length says 1 MB: the body is never parsed (it is not even a valid multipart).
    response = _client(member).generic(
        "POST",
        "/documents/upload/",
        b"never read",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH="1000000",
    )

    assert response.status_code == 413
    assert "This upload is 1.0 MB; one upload carries at most 500 bytes" in _html(response)
    assert _documents(acme) == []


def test_the_workspace_document_limit_refuses_the_batch_whole(
    acme: Workspace, member: User, on_plan: OnPlan
) -> None:
    on_plan("pro")  # takes the setting
    _add(acme, member, "first.md")
    with override_settings(RAG_MAX_DOCUMENTS=2):
        response = _client(member).post(
            "/documents/upload/", {"file": [_file("second.md"), _file("third.md")]}
        )

    assert response.status_code == 409
    assert "holds 2 documents, the most the Pro plan allows (2); delete some first." in _html(
        response
    )
    assert "None of the 2 files was added." in _html(response)
    assert [d.filename for d in _documents(acme)] == ["first.md"]


def test_an_upload_without_a_csrf_token_is_refused(acme: Workspace, member: User) -> None:
    client = Client(HTTP_HOST="acme.localhost", enforce_csrf_checks=True)
    client.force_login(member)

    response = client.post("/documents/upload/", {"file": _file("guide.md")})

    assert response.status_code == 403
    assert _documents(acme) == []


def test_pasted_text_becomes_a_text_document(acme: Workspace, member: User) -> None:
    response = _client(member).post(
        "/documents/paste/",
        {"title": "Release notes", "text": "# v2\n\nFaster search.", "format": "md"},
    )

    assert response.status_code == 302
    [document] = _documents(acme)
    assert (document.title, document.filename, document.source, document.mime) == (
        "Release notes",
        "Release notes.md",
        "text",
        "text/markdown",
    )
    with schema_context(acme.schema_name):
        assert bytes(document.file.data) == b"# v2\n\nFaster search."


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"title": "Notes", "text": "", "format": "txt"}, "text", "Paste some text to add."),
        ({"title": "Notes", "text": "  \n ", "format": "txt"}, "text", "only blank space"),
        ({"title": " ", "text": "Hello", "format": "txt"}, "title", "Give the text a title."),
        ({"title": "Notes", "text": "Hello", "format": "docx"}, "format", "Select a valid choice"),
    ],
)
def test_bad_pasted_text_is_explained_at_its_field(
    acme: Workspace, member: User, data: dict[str, str], field: str, message: str
) -> None:
    response = _client(member).post("/documents/paste/", data)

    assert response.status_code == 400
    html = _html(response)
    error = html.split(f'data-testid="paste-{field}-error">')[1].split("</p>")[0]
    assert message in error
    assert _documents(acme) == []


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_text_too_long_to_paste_is_explained_at_the_field(acme: Workspace, member: User) -> None:
    # the page posts multipart: the limit counts the text's bytes, not a percent-encoding
    fits = _client(member).post(
        "/documents/paste/", {"title": "Fits", "text": "é" * 400, "format": "txt"}
    )
    too_long = _client(member).post(
        "/documents/paste/", {"title": "Huge", "text": "word " * 300, "format": "txt"}
    )

    assert fits.status_code == 302
    assert too_long.status_code == 413
    error = _html(too_long).split('data-testid="paste-text-error">')[1].split("</p>")[0]
    assert "The text is too long to paste; at most 1,000 bytes." in error
    assert [d.title for d in _documents(acme)] == ["Fits"]


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_text_far_too_long_is_refused_before_it_is_read(acme: Workspace, member: User) -> None:
    response = _client(member).generic(
        "POST",
        "/documents/paste/",
        b"never read",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(1000 + 64 * 1024 + 1),
    )

    assert response.status_code == 413
    assert "The text is too long to paste" in _html(response)
    assert _documents(acme) == []


def test_a_url_is_queued_to_be_fetched_by_the_task(acme: Workspace, member: User) -> None:
    client = _client(member)
    response = client.post(
        "/documents/url/", {"url": " https://example.com/handbook ", "title": "Handbook"}
    )

    assert response.status_code == 302
    [document] = _documents(acme)
    assert (document.title, document.source, document.url, document.status) == (
        "Handbook",
        "url",
        "https://example.com/handbook",
        "queued",
    )
    assert document.created_by_id == member.pk
    page = _html(client.get("/documents/"))
    assert "Added “Handbook”. The page is being fetched, then indexed." in page


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "Enter the address of a web page"),
        ("ftp://example.com/a.txt", "Only http:// and https:// addresses can be imported."),
        ("http://192.168.1.10/wiki", "That address points into a private network (192.168.1.10)"),
    ],
)
def test_a_bad_url_is_explained_at_the_field_and_stores_nothing(
    acme: Workspace, member: User, url: str, message: str
) -> None:
    response = _client(member).post("/documents/url/", {"url": url})

    assert response.status_code == 400
    error = _html(response).split('data-testid="url-url-error">')[1].split("</p>")[0]
    assert message in error
    assert _documents(acme) == []


def test_the_page_states_the_plans_limits(member: User) -> None:
    html = _html(_client(member).get("/documents/"))

    assert "The Free plan holds up to 100 documents of up to 10.0 MB each." in html
    assert "10.0 MB per file on the Free plan." in html
    assert 'data-testid="url-form"' in html


@override_settings(DATA_UPLOAD_MAX_NUMBER_FILES=3)
def test_more_files_than_django_parses_is_explained(acme: Workspace, member: User) -> None:
    files = [_file(f"n{i}.md") for i in range(4)]

    response = _client(member).post("/documents/upload/", {"file": files})

    assert response.status_code == 400
    assert f"Too many files in one upload; at most {MAX_FILES}." in _html(response)
    assert _documents(acme) == []


# --- a document --------------------------------------------------------------------------


@pytest.fixture
def indexed(acme: Workspace, member: User, fresh_redis: redis.Redis) -> Iterator[Document]:
    with gateway_settings(), schema_context(acme.schema_name):
        document = document_add(user=member, data=GUIDE, filename="guide.md")
        document_index(workspace=acme, document_id=document.pk)
        document.refresh_from_db()
        yield document


def test_a_document_shows_its_details_and_chunks(member: User, indexed: Document) -> None:
    page = _client(member).get(f"/documents/{indexed.pk}/")

    assert page.status_code == 200
    html = _html(page)
    assert indexed.chunk_count >= 1
    assert html.count('data-testid="chunk"') == indexed.chunk_count
    assert "Ocelot guide › Backups" in html
    assert "02:00 UTC" in html
    assert 'data-status="ready"' in html
    assert "tokens" in html
    assert "all-MiniLM-L6-v2" in html


def test_chunks_are_paginated(
    member: User, indexed: Document, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("apps.rag.views.CHUNKS_PAGE_SIZE", 1)

    first = _html(_client(member).get(f"/documents/{indexed.pk}/"))
    last = _html(_client(member).get(f"/documents/{indexed.pk}/?page=999"))

    assert first.count('data-testid="chunk"') == 1
    assert f"Page 1 of {indexed.chunk_count}" in first
    assert f"Page {indexed.chunk_count} of {indexed.chunk_count}" in last


def test_a_missing_document_is_404(member: User) -> None:
    assert _client(member).get("/documents/999999/").status_code == 404
    assert _client(member).post("/documents/999999/reindex/").status_code == 404
    assert _client(member).post("/documents/999999/delete/").status_code == 404


def test_reindex_queues_the_document_again(
    acme: Workspace, owner: User, member: User, indexed: Document
) -> None:
    # a member may re-index a document someone else added
    response = _client(owner).post(f"/documents/{indexed.pk}/reindex/", follow=True)

    assert "is queued to be indexed again" in _html(response)
    with schema_context(acme.schema_name):
        indexed.refresh_from_db()
    assert indexed.status == "queued"


def test_reindex_is_refused_while_indexing(acme: Workspace, member: User) -> None:
    document = _add(acme, member)

    response = _client(member).post(f"/documents/{document.pk}/reindex/")

    assert response.status_code == 409
    assert "is being indexed now (queued)" in _html(response)


# --- who may delete ----------------------------------------------------------------------


@pytest.fixture
def other_member(acme: Workspace) -> User:
    user = UserFactory.create(email="other@acme.test")
    Membership.objects.create(workspace=acme, user=user, role=Role.MEMBER)
    return user


def test_a_member_deletes_a_document_they_added_after_confirming(
    acme: Workspace, member: User
) -> None:
    document = _add(acme, member)
    client = _client(member)

    confirm = client.get(f"/documents/{document.pk}/delete/")
    deleted = client.post(f"/documents/{document.pk}/delete/", follow=True)

    assert 'data-testid="delete-confirm"' in _html(confirm)
    assert _documents(acme) == []
    assert "Deleted “guide.md”" in _html(deleted)


def test_a_member_cannot_delete_another_members_document(
    acme: Workspace, member: User, other_member: User
) -> None:
    document = _add(acme, member)
    client = _client(other_member)

    page = client.get(f"/documents/{document.pk}/")
    refused = client.post(f"/documents/{document.pk}/delete/")

    assert 'data-testid="delete-not-allowed"' in _html(page)
    assert 'data-testid="delete"' not in _html(page)
    assert refused.status_code == 403
    assert "Only owners, admins and the member who added a document" in _html(refused)
    assert len(_documents(acme)) == 1


def test_an_owner_deletes_any_document(acme: Workspace, owner: User, member: User) -> None:
    document = _add(acme, member)

    assert 'data-testid="delete"' in _html(_client(owner).get(f"/documents/{document.pk}/"))
    assert _client(owner).post(f"/documents/{document.pk}/delete/").status_code == 302
    assert _documents(acme) == []


def test_an_outsider_gets_404_on_every_document_url(
    acme: Workspace, member: User, outsider: User
) -> None:
    document = _add(acme, member)
    client = _client(outsider)

    for path in ("/documents/", f"/documents/{document.pk}/", f"/documents/{document.pk}/delete/"):
        assert client.get(path).status_code == 404
    for path in (
        "/documents/upload/",
        "/documents/paste/",
        "/documents/url/",
        f"/documents/{document.pk}/reindex/",
        f"/documents/{document.pk}/delete/",
    ):
        assert client.post(path, {"file": _file("x.md")}).status_code == 404
    assert len(_documents(acme)) == 1
    # and in globex's own schema the id names nothing
    assert (
        host_client("globex.localhost", outsider).get(f"/documents/{document.pk}/").status_code
        == 404
    )
