"""`/v1/documents` over HTTP against daphne: adding a file (multipart), text or a URL (JSON),
reading a document's status as it is indexed, listing with cursor pages, searching its chunks,
deleting; every bad input as a precise 4xx with nothing written; bodies capped by the plan
before they are read; the `documents` scope; and a key of another workspace seeing, deleting
and finding nothing of this one's."""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
import redis
from django.core.management import call_command
from django_tenants.utils import schema_context

from apps.api.app import OpenAIApi
from apps.rag.models import Collection, Document
from apps.rag.services import collection_default, document_index
from apps.workspaces.forms import ApiKeyForm
from apps.workspaces.models import Workspace
from tests.asgi_server import run_committed
from tests.fakes import FakeOpenAIServer
from tests.gateway_support import gateway_settings

from .conftest import UPSTREAM_KEY, Key, MakeKey

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("forget_documents")]


@pytest.fixture
def acme_key(make_key: MakeKey) -> Key:
    return make_key("acme", scopes=["documents"])


@pytest.fixture
def globex_key(make_key: MakeKey) -> Key:
    return make_key("globex", scopes=["documents"])


@pytest.fixture
def index(upstream: FakeOpenAIServer, fresh_redis: redis.Redis) -> Iterator[Any]:
    """`index(slug, document_id)` runs the indexing task's service here, committed, with the
    same embedding model as daphne (the fake OpenAI upstream); returns the status."""

    def run(slug: str, document_id: int) -> str:
        def work() -> str:
            workspace = Workspace.objects.get(slug=slug)
            with schema_context(slug):
                return document_index(workspace=workspace, document_id=document_id).status

        return run_committed(work)

    with gateway_settings(OPENAI_API_KEY=UPSTREAM_KEY, OPENAI_BASE_URL=upstream.base_url):
        yield run


def auth(key: Key) -> dict[str, str]:
    return {"authorization": f"Bearer {key.secret}"}


def word() -> str:
    """A word no other test's document contains."""
    return f"zq{uuid.uuid4().hex[:10]}"


def guide(marker: str) -> bytes:
    return f"""# Ocelot guide

The ocelot service runs on port 7410.

## Backups

Backups run nightly at 02:00 UTC and are kept for 35 days; ask {marker} for restores.
""".encode()


def upload(
    http: httpx.Client, key: Key, data: bytes, name: str = "guide.md", **fields: str
) -> httpx.Response:
    return http.post(
        "/documents",
        headers=auth(key),
        files={"file": (name, data, "text/markdown")},
        data=fields,
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    return error


def stored(slug: str) -> list[int]:
    def ids() -> list[int]:
        with schema_context(slug):
            return list(Document.objects.order_by("pk").values_list("pk", flat=True))

    return run_committed(ids)


# --- the life of a document -----------------------------------------------------------------


def test_a_file_is_added_indexed_found_and_deleted(
    http: httpx.Client, acme_key: Key, index: Any
) -> None:
    marker = word()

    # given a Markdown file uploaded as multipart
    added = upload(http, acme_key, guide(marker), title="Ocelot guide")

    assert added.status_code == 201, added.text
    document = added.json()
    assert {k: document[k] for k in ("object", "title", "source", "status", "error")} == {
        "object": "document",
        "title": "Ocelot guide",
        "source": "api",
        "status": "queued",
        "error": None,
    }
    assert (document["filename"], document["mime"]) == ("guide.md", "text/markdown")
    assert document["size_bytes"] == len(guide(marker))
    default = run_committed(lambda: _default_collection("acme"))
    assert document["collection_id"] == default

    # when the indexing task has run, its status says so
    assert index("acme", document["id"]) == "ready"
    ready = http.get(f"/documents/{document['id']}", headers=auth(acme_key)).json()
    assert (ready["status"], ready["error"]) == ("ready", None)
    assert ready["chunk_count"] >= 1
    assert ready["embedding_model"]

    # then a search finds its chunk, with where it sits
    for mode in ("hybrid", "lexical", "dense"):
        found = http.post(
            "/documents/search",
            headers=auth(acme_key),
            json={"query": f"who restores backups {marker}", "k": 3, "mode": mode},
        )
        assert found.status_code == 200, found.text
        assert found.json()["mode"] == mode
        hits = found.json()["data"]
        assert hits, mode
        if mode == "lexical":  # the fake upstream's vectors are not semantic
            best = hits[0]
            assert (best["document_id"], best["document_title"]) == (document["id"], "Ocelot guide")
            assert best["heading_path"][0] == "Ocelot guide"
            assert marker in best["text"]
            assert best["page"] is None
            assert best["score"] > 0

    # and deleting it takes it out of reads and searches
    deleted = http.delete(f"/documents/{document['id']}", headers=auth(acme_key))
    assert deleted.status_code == 200
    assert deleted.json() == {"id": document["id"], "object": "document.deleted", "deleted": True}
    assert http.get(f"/documents/{document['id']}", headers=auth(acme_key)).status_code == 404
    gone = http.post(
        "/documents/search", headers=auth(acme_key), json={"query": marker, "mode": "lexical"}
    )
    assert gone.json()["data"] == []
    assert document["id"] not in stored("acme")


def _default_collection(slug: str) -> int:
    with schema_context(slug):
        return collection_default().pk


def test_text_as_json_becomes_a_document(http: httpx.Client, acme_key: Key, index: Any) -> None:
    sent = {"title": "Release notes", "text": "# v2\n\nFaster search.", "format": "markdown"}

    added = http.post("/documents", headers=auth(acme_key), json=sent)

    assert added.status_code == 201, added.text
    document = added.json()
    assert (document["title"], document["filename"], document["mime"]) == (
        "Release notes",
        "Release notes.md",
        "text/markdown",
    )
    assert index("acme", document["id"]) == "ready"


def test_a_url_is_queued_and_fetched_while_indexing(http: httpx.Client, acme_key: Key) -> None:
    added = http.post(
        "/documents", headers=auth(acme_key), json={"url": "https://example.com/handbook"}
    )

    assert added.status_code == 201, added.text
    document = added.json()
    assert (document["url"], document["title"], document["status"], document["size_bytes"]) == (
        "https://example.com/handbook",
        "example.com/handbook",
        "queued",
        0,
    )


def test_a_document_can_go_into_a_collection(http: httpx.Client, acme_key: Key) -> None:
    def create() -> int:
        with schema_context("acme"):
            return Collection.objects.create(name=f"Handbooks {word()}").pk

    collection = run_committed(create)

    added = upload(http, acme_key, guide(word()), collection=str(collection))
    listed = http.get(
        "/documents", headers=auth(acme_key), params={"collection": collection}
    ).json()

    assert added.json()["collection_id"] == collection
    assert [d["id"] for d in listed["data"]] == [added.json()["id"]]

    def remove() -> None:
        with schema_context("acme"):
            Document.objects.filter(collection_id=collection).delete()
            Collection.objects.filter(pk=collection).delete()

    run_committed(remove)


def test_documents_are_listed_newest_first_in_pages(http: httpx.Client, acme_key: Key) -> None:
    ids = [upload(http, acme_key, guide(word()), name=f"n{i}.md").json()["id"] for i in range(3)]

    first = http.get("/documents", headers=auth(acme_key), params={"limit": 2}).json()
    after = first["data"][-1]["id"]
    rest = http.get(
        "/documents", headers=auth(acme_key), params={"limit": 2, "after": after}
    ).json()
    queued = http.get(
        "/documents", headers=auth(acme_key), params={"status": "queued", "limit": 100}
    ).json()
    ready = http.get("/documents", headers=auth(acme_key), params={"status": "ready"}).json()

    assert [d["id"] for d in first["data"]] == [ids[2], ids[1]]
    assert first["has_more"] is True
    assert ids[0] in [d["id"] for d in rest["data"]]
    assert set(ids) <= {d["id"] for d in queued["data"]}
    assert not set(ids) & {d["id"] for d in ready["data"]}


# --- plan limits and body sizes -------------------------------------------------------------


def test_the_plans_document_count_is_409_naming_the_plan(http: httpx.Client, acme_key: Key) -> None:
    def fill() -> int:
        with schema_context("acme"):
            collection = collection_default()
            room = 100 - Document.objects.count()
            Document.objects.bulk_create(
                Document(collection=collection, title=f"f{i}", source="api", content_hash="")
                for i in range(room)
            )
            return Document.objects.count()

    assert run_committed(fill) == 100

    refused = http.post("/documents", headers=auth(acme_key), json={"title": "t", "text": "x"})

    assert refused.status_code == 409
    error = error_of(refused)
    assert (error["code"], error["param"]) == ("document_limit_reached", "text")
    assert error["message"] == (
        "This workspace holds 100 documents, the most the Free plan allows (100); "
        "delete some first."
    )
    assert len(stored("acme")) == 100


def test_text_over_the_plans_size_is_413_naming_the_plan(http: httpx.Client, acme_key: Key) -> None:
    before = stored("acme")

    refused = http.post(
        "/documents", headers=auth(acme_key), json={"title": "Big", "text": "x" * 10_000_001}
    )

    assert refused.status_code == 413
    error = error_of(refused)
    assert (error["code"], error["param"]) == ("document_too_large", "text")
    assert "the Free plan allows documents of at most 10.0 MB" in error["message"]
    assert stored("acme") == before


async def in_process(
    key: Key, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, Any], int]:
    """POST /v1/documents to the ASGI app in this process: its status, its JSON, and how many
    times it asked for the body. Daphne gathers a body before the app sees it (and refuses a
    multipart body with no boundary itself), so these cases are driven at the ASGI interface."""
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = {"host": "localhost", "authorization": f"Bearer {key.secret}", **headers}
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/documents",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    await OpenAIApi(app=None)(scope, receive, send)  # type: ignore[arg-type]
    return sent[0]["status"], json.loads(sent[1]["body"]), reads


@pytest.mark.asyncio
@pytest.mark.usefixtures("fresh_redis")
async def test_a_body_declared_over_the_plans_limit_is_refused_before_it_is_read(
    acme_key: Key,
) -> None:
    # Content-Length says 50 MB: the answer comes without reading any of it
    status, answer, reads = await in_process(
        acme_key, {"content-type": "application/json", "content-length": "50000000"}
    )

    assert (status, reads) == (413, 0)
    assert answer["error"]["code"] == "request_too_large"
    assert answer["error"]["message"] == (
        "The request is larger than a document may be: the Free plan allows documents of at "
        "most 10.0 MB."
    )


@pytest.mark.asyncio
@pytest.mark.usefixtures("fresh_redis")
async def test_a_multipart_body_without_a_boundary_is_400(acme_key: Key) -> None:
    status, answer, _ = await in_process(
        acme_key, {"content-type": "multipart/form-data"}, b"--x\r\nbroken"
    )

    assert status == 400
    assert answer["error"]["code"] == "invalid_multipart"
    assert "could not be read: Invalid boundary" in answer["error"]["message"]


def test_a_streamed_body_over_the_plans_limit_is_cut_off(http: httpx.Client, acme_key: Key) -> None:
    before = stored("acme")

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked
        for _ in range(12):
            yield b"x" * 1_000_000

    refused = http.post(
        "/documents",
        headers={**auth(acme_key), "content-type": "application/json"},
        content=chunks(),
    )

    assert refused.status_code == 413
    assert "the Free plan allows documents of at most 10.0 MB" in error_of(refused)["message"]
    assert stored("acme") == before


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "param", "says"),
    [
        ({"json": {}}, 400, "missing_required_parameter", "text", "send 'text'"),
        (
            {"json": {"text": "x", "url": "https://a.example"}},
            400,
            "invalid_value",
            "url",
            "not both",
        ),
        ({"json": {"text": "Hello"}}, 400, "missing_required_parameter", "title", "title"),
        ({"json": {"text": "  \n", "title": "t"}}, 400, "invalid_value", "text", "blank space"),
        ({"json": {"text": "a\x00b", "title": "t"}}, 400, "invalid_value", "text", "NUL"),
        (
            {"json": {"text": "x", "title": "t", "pages": 3}},
            400,
            "unknown_parameter",
            "pages",
            "Unrecognized",
        ),
        (
            {"json": {"text": "x", "title": "t", "format": "docx"}},
            400,
            "invalid_value",
            "format",
            "'text' or 'markdown'",
        ),
        (
            {"json": {"text": "x", "title": "t", "collection": "1"}},
            400,
            "invalid_value",
            "collection",
            "integer",
        ),
        (
            {"json": {"text": "x", "title": "t", "collection": 987654}},
            404,
            "collection_not_found",
            "collection",
            "No collection 987654",
        ),
        (
            {"json": {"url": "ftp://example.com/a"}},
            400,
            "invalid_request",
            "url",
            "Only http:// and https://",
        ),
        (
            {"json": {"url": "http://127.0.0.1:8000/admin"}},
            400,
            "invalid_request",
            "url",
            "private network (127.0.0.1)",
        ),
        (
            {"json": {"url": "http://169.254.169.254/latest/"}},
            400,
            "invalid_request",
            "url",
            "private network",
        ),
        ({"content": b"[1, 2]"}, 400, "invalid_json", None, "JSON object"),
        ({"content": b"{not json"}, 400, "invalid_json", None, "could not parse"),
        (
            {"files": {"file": ("empty.md", b"", "text/markdown")}},
            400,
            "invalid_request",
            "file",
            "The file is empty.",
        ),
        (
            {"files": {"file": ("r.docx", b"PK\x03\x04zip", "application/msword")}},
            400,
            "unparseable_document",
            "file",
            "not a supported file type",
        ),
        (
            {"files": {"other": ("a.md", b"# A", "text/markdown")}},
            400,
            "unknown_parameter",
            "other",
            "Unrecognized",
        ),
        (
            {"data": {"title": "no file"}, "files": {"x": ("", b"")}},
            400,
            "missing_required_parameter",
            "file",
            "'file'",
        ),
        (
            {"data": {"file": "text, not a file"}, "files": {"x": ("", b"")}},
            400,
            "invalid_value",
            "file",
            "file part",
        ),
        (
            {"files": {"file": ("a.md", b"# A", "text/markdown")}, "data": {"collection": "abc"}},
            400,
            "invalid_value",
            "collection",
            "whole number",
        ),
        (
            {"files": {"file": ("a.md", b"# A", "text/markdown")}, "data": {"colour": "red"}},
            400,
            "unknown_parameter",
            "colour",
            "Unrecognized",
        ),
    ],
)
def test_bad_input_to_add_is_a_precise_4xx_and_stores_nothing(
    http: httpx.Client,
    acme_key: Key,
    kwargs: dict[str, Any],
    status: int,
    code: str,
    param: str | None,
    says: str,
) -> None:
    before = stored("acme")
    response = http.post("/documents", headers=auth(acme_key), **kwargs)

    assert response.status_code == status, response.text
    error = error_of(response)
    assert (error["code"], error["param"]) == (code, param)
    assert says in error["message"]
    assert stored("acme") == before


@pytest.mark.parametrize(
    ("body", "code", "param", "says"),
    [
        ({}, "missing_required_parameter", "query", "query"),
        ({"query": ""}, "invalid_value", "query", "at least 1 character"),
        ({"query": "   "}, "invalid_value", "query", "blank space"),
        ({"query": "x" * 2001}, "invalid_value", "query", "at most 2000"),
        ({"query": "a\x00b"}, "invalid_value", "query", "NUL"),
        ({"query": "x", "k": 0}, "invalid_value", "k", "greater than or equal to 1"),
        ({"query": "x", "k": 51}, "invalid_value", "k", "less than or equal to 50"),
        ({"query": "x", "k": "5"}, "invalid_value", "k", "valid integer"),
        ({"query": "x", "mode": "fuzzy"}, "invalid_value", "mode", "'hybrid'"),
        ({"query": "x", "document_ids": [0]}, "invalid_value", "document_ids[0]", "greater than"),
        ({"query": "x", "document_ids": [2**63]}, "invalid_value", "document_ids[0]", "less than"),
        (
            {"query": "x", "collection_ids": list(range(1, 102))},
            "invalid_value",
            "collection_ids",
            "at most 100",
        ),
        ({"query": "x", "top": 3}, "unknown_parameter", "top", "Unrecognized"),
    ],
)
def test_bad_searches_are_400_naming_the_parameter(
    http: httpx.Client, acme_key: Key, body: dict[str, Any], code: str, param: str, says: str
) -> None:
    response = http.post("/documents/search", headers=auth(acme_key), json=body)

    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["code"], error["param"]) == (code, param)
    assert says in error["message"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"after": "abc"}, "after"),
        ({"status": "done"}, "status"),
        ({"collection": "-1"}, "collection"),
        ({"page": "2"}, "page"),
    ],
)
def test_bad_list_queries_are_400_naming_the_parameter(
    http: httpx.Client, acme_key: Key, params: dict[str, str], param: str
) -> None:
    response = http.get("/documents", headers=auth(acme_key), params=params)

    assert response.status_code == 400
    assert error_of(response)["param"] == param


@pytest.mark.parametrize("document_id", ["abc", "0", "-1", "99999999999999999999", "987654321"])
def test_a_document_id_that_names_nothing_is_404(
    http: httpx.Client, acme_key: Key, document_id: str
) -> None:
    fetched = http.get(f"/documents/{document_id}", headers=auth(acme_key))
    deleted = http.delete(f"/documents/{document_id}", headers=auth(acme_key))

    for response in (fetched, deleted):
        assert response.status_code == 404
        error = error_of(response)
        assert (error["code"], error["param"]) == ("document_not_found", "document_id")
        assert error["message"] == f"No document {document_id} in this workspace."


def test_other_methods_are_405_and_search_is_never_a_document_id(
    http: httpx.Client, acme_key: Key
) -> None:
    search = http.get("/documents/search", headers=auth(acme_key))
    collection = http.put("/documents", headers=auth(acme_key))
    item = http.post("/documents/1", headers=auth(acme_key))

    assert (search.status_code, search.headers["allow"]) == (405, "POST")
    assert (collection.status_code, collection.headers["allow"]) == (405, "GET, POST")
    assert (item.status_code, item.headers["allow"]) == (405, "DELETE, GET")


# --- who may ------------------------------------------------------------------------------


def test_a_key_without_the_documents_scope_is_403_everywhere(
    make_key: MakeKey, http: httpx.Client
) -> None:
    default = make_key("acme")
    before = stored("acme")

    answers = [
        http.post("/documents", headers=auth(default), json={"title": "t", "text": "x"}),
        http.get("/documents", headers=auth(default)),
        http.get("/documents/1", headers=auth(default)),
        http.delete("/documents/1", headers=auth(default)),
        http.post("/documents/search", headers=auth(default), json={"query": "x"}),
    ]

    assert default.row.scopes == ["chat", "embeddings"]
    for answer in answers:
        assert answer.status_code == 403
        error = error_of(answer)
        assert (error["type"], error["code"]) == ("permission_error", "insufficient_scope")
        assert "may not use documents; its scopes are: chat, embeddings." in error["message"]
    assert stored("acme") == before


def test_the_scope_is_offered_unchecked_and_labelled_on_the_keys_page_and_the_cli(
    acme: Workspace,
) -> None:
    form = str(ApiKeyForm()["scopes"])
    out = io.StringIO()

    call_command(
        "apikey",
        "create",
        "--workspace",
        "acme",
        "--name",
        "docs bot",
        "--scopes",
        "documents",
        "--json",
        stdout=out,
    )

    box = re.search(r'<input[^>]*value="documents"[^>]*>', form)
    assert box is not None
    assert "checked" not in box.group(0)
    assert "documents: add, list, delete and search this workspace" in form
    assert "(/v1/documents); a key with it can delete any document" in form
    assert json.loads(out.getvalue())["scopes"] == ["documents"]


def test_no_key_is_401(http: httpx.Client) -> None:
    response = http.post("/documents", json={"title": "t", "text": "x"})

    assert response.status_code == 401
    assert error_of(response)["code"] == "missing_api_key"


def test_a_key_of_another_workspace_never_sees_deletes_or_finds_a_document(
    http: httpx.Client, acme_key: Key, globex_key: Key, index: Any
) -> None:
    # given a document of acme's, indexed, and an id that names nothing in globex's schema
    marker = word()
    ours = upload(http, acme_key, guide(marker)).json()
    assert index("acme", ours["id"]) == "ready"
    assert ours["id"] not in stored("globex")

    # when globex's key asks for it every way it can
    fetched = http.get(f"/documents/{ours['id']}", headers=auth(globex_key))
    deleted = http.delete(f"/documents/{ours['id']}", headers=auth(globex_key))
    listed = http.get("/documents", headers=auth(globex_key), params={"limit": 100}).json()
    searches = [
        http.post("/documents/search", headers=auth(globex_key), json=body).json()
        for body in (
            {"query": marker, "mode": "lexical"},
            {"query": marker, "mode": "hybrid"},
            {"query": marker, "document_ids": [ours["id"]]},
        )
    ]

    # then it gets "not found" and nothing of acme's, and acme's document is untouched
    assert (fetched.status_code, deleted.status_code) == (404, 404)
    assert ours["id"] not in [d["id"] for d in listed["data"]]
    for result in searches:
        assert all(marker not in hit["text"] for hit in result["data"])
    still = http.get(f"/documents/{ours['id']}", headers=auth(acme_key))
    assert (still.status_code, still.json()["status"]) == (200, "ready")
