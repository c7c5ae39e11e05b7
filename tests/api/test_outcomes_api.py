"""`/v1/outcomes` over HTTP against daphne: recording (201, idempotent 200, conflicting 409),
listing with filters and cursor pages, fetching one, every bad input as a 400 naming the
parameter with nothing written, the `outcomes` scope, the router's 404/405, and another
workspace's key seeing and touching nothing."""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest
from django.conf import settings
from django.core.management import call_command

from apps.billing.models import Outcome, OutcomeStatus
from apps.billing.outcomes import outcome_dispute
from apps.billing.selectors import outcome_list
from apps.traces.models import LlmCallLog
from apps.workspaces.api_keys import API_KEY_DEFAULT_SCOPES, API_KEY_SCOPES
from apps.workspaces.forms import ApiKeyForm
from apps.workspaces.models import Membership, Workspace
from tests.asgi_server import AsgiServer, run_committed
from tests.factories import LlmCallLogFactory

from .conftest import Key, MakeKey

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("forget_outcomes")]


@pytest.fixture
def acme_key(make_key: MakeKey) -> Key:
    return make_key("acme", scopes=["outcomes"])


@pytest.fixture
def globex_key(make_key: MakeKey) -> Key:
    return make_key("globex", scopes=["outcomes"])


def ext() -> str:
    return f"ticket-{uuid.uuid4().hex[:10]}"


def body(**changes: Any) -> dict[str, Any]:
    return {"kind": "ticket_resolved", "price_usd": "0.25", "external_id": ext(), **changes}


def auth(key: Key) -> dict[str, str]:
    return {"authorization": f"Bearer {key.secret}"}


def record(http: httpx.Client, key: Key, **changes: Any) -> httpx.Response:
    return http.post("/outcomes", headers=auth(key), json=body(**changes))


def stored(workspace: Workspace) -> list[int]:
    """The workspace's outcome ids, newest first, as committed."""
    return run_committed(
        lambda: list(outcome_list(workspace=workspace).values_list("pk", flat=True))
    )


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- recording ------------------------------------------------------------------------------


def test_recording_an_outcome_answers_201_with_the_outcome(
    http: httpx.Client, acme_key: Key
) -> None:
    trace = str(uuid.uuid4())
    sent = body(price_usd="19.99", trace_id=trace, run_id="run-42")

    response = http.post("/outcomes", headers=auth(acme_key), json=sent)

    assert response.status_code == 201, response.text
    outcome = response.json()
    assert {k: v for k, v in outcome.items() if k not in ("id", "created_at")} == {
        "object": "outcome",
        "kind": "ticket_resolved",
        "price_micros": 19_990_000,
        "price_usd": "19.990000",
        "status": "pending",
        "external_id": sent["external_id"],
        "trace_id": trace,
        "run_id": "run-42",
        "dispute_window_ends_at": outcome["dispute_window_ends_at"],
    }
    window = when(outcome["dispute_window_ends_at"]) - when(outcome["created_at"])
    assert abs(window - timedelta(days=settings.OUTCOME_DISPUTE_WINDOW_DAYS)) < timedelta(seconds=1)
    row = run_committed(lambda: Outcome.objects.get(pk=outcome["id"]))
    assert (row.workspace_id, row.price_micros, row.status, str(row.trace_id)) == (
        acme_key.workspace.pk,
        19_990_000,
        OutcomeStatus.PENDING,
        trace,
    )


@pytest.fixture
def globex_call() -> Iterator[uuid.UUID]:
    """A committed call of globex's: its trace id."""
    row = run_committed(
        lambda: LlmCallLogFactory.create(workspace=Workspace.objects.get(slug="globex"))
    )
    yield row.trace_id
    run_committed(lambda: LlmCallLog.objects.filter(pk=row.pk).delete())


def test_another_workspaces_trace_id_is_400_and_nothing_is_written(
    http: httpx.Client, acme_key: Key, globex_key: Key, globex_call: uuid.UUID
) -> None:
    before = stored(acme_key.workspace)

    response = record(http, acme_key, trace_id=str(globex_call))

    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "trace_id"
    assert stored(acme_key.workspace) == before
    # Its own workspace's key records against it.
    assert record(http, globex_key, trace_id=str(globex_call)).status_code == 201


@pytest.mark.parametrize(
    ("price", "micros"),
    [
        ("0.1", 100_000),  # a JSON number: read exactly, never through a float
        ("19.99", 19_990_000),
        ("1e-6", 1),
        ("3", 3_000_000),
        ('"0.000001"', 1),
        ('"1000000000"', 10**15),
    ],
)
def test_the_price_in_dollars_becomes_exact_micro_dollars(
    http: httpx.Client, acme_key: Key, price: str, micros: int
) -> None:
    content = f'{{"kind": "k", "external_id": "{ext()}", "price_usd": {price}}}'

    response = http.post("/outcomes", headers=auth(acme_key), content=content.encode())

    assert response.status_code == 201, response.text
    assert response.json()["price_micros"] == micros


def test_the_same_external_id_again_is_200_with_the_first_outcome(
    http: httpx.Client, acme_key: Key
) -> None:
    first = record(http, acme_key, external_id="ticket-idem", trace_id=str(uuid.uuid4()))

    # the same kind and price, as a number this time, and another trace: the first one stands
    again = record(http, acme_key, external_id="ticket-idem", price_usd=0.25, trace_id=None)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert stored(acme_key.workspace).count(first.json()["id"]) == 1
    assert (
        run_committed(
            lambda: Outcome.objects.filter(
                workspace=acme_key.workspace, external_id="ticket-idem"
            ).count()
        )
        == 1
    )


@pytest.mark.parametrize("changes", [{"price_usd": "0.26"}, {"kind": "ticket_escalated"}])
def test_the_same_external_id_with_another_kind_or_price_is_409_naming_it(
    http: httpx.Client, acme_key: Key, changes: dict[str, Any]
) -> None:
    first = record(http, acme_key, external_id="ticket-clash")

    clash = record(http, acme_key, external_id="ticket-clash", **changes)

    assert clash.status_code == 409
    assert clash.headers["content-type"] == "application/json"
    error = clash.json()["error"]
    assert (error["code"], error["param"]) == ("outcome_conflict", "external_id")
    assert "ticket-clash" in error["message"]
    row = run_committed(lambda: Outcome.objects.get(pk=first.json()["id"]))
    assert (row.kind, row.price_micros) == ("ticket_resolved", 250_000)


def test_concurrent_recordings_of_one_external_id_make_one_outcome(
    api_server: AsgiServer, acme_key: Key
) -> None:
    sent = body()

    def post(_: int) -> httpx.Response:
        return httpx.post(
            api_server.url("/v1/outcomes"), headers=auth(acme_key), json=sent, timeout=30
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(post, range(4)))

    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert (
        run_committed(lambda: Outcome.objects.filter(external_id=sent["external_id"]).count()) == 1
    )


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code", "param", "says"),
    [
        ({"kind": None}, "invalid_value", "kind", "valid string"),
        ({"kind": ""}, "invalid_value", "kind", "at least 1 character"),
        ({"kind": "   "}, "invalid_request", "kind", "1–100 characters"),
        ({"kind": "k" * 101}, "invalid_value", "kind", "at most 100 characters"),
        ({"kind": 7}, "invalid_value", "kind", "valid string"),
        ({"price_usd": "0"}, "invalid_value", "price_usd", "greater than 0"),
        ({"price_usd": 0}, "invalid_value", "price_usd", "greater than 0"),
        ({"price_usd": "-1"}, "invalid_value", "price_usd", "no sign"),
        ({"price_usd": -1}, "invalid_value", "price_usd", "greater than 0"),
        ({"price_usd": "abc"}, "invalid_value", "price_usd", "digits"),
        ({"price_usd": "1e3"}, "invalid_value", "price_usd", "no sign, exponent"),
        ({"price_usd": " 1"}, "invalid_value", "price_usd", "spaces"),
        ({"price_usd": "0.0000001"}, "invalid_value", "price_usd", "six decimal places"),
        ({"price_usd": 0.0000001}, "invalid_value", "price_usd", "six decimal places"),
        ({"price_usd": "1000000000.01"}, "invalid_value", "price_usd", "limited to $1,000,000,000"),
        ({"price_usd": True}, "invalid_value", "price_usd", "amount in US dollars"),
        ({"price_usd": ["1"]}, "invalid_value", "price_usd", "amount in US dollars"),
        ({"price_micros": 250_000}, "unknown_parameter", "price_micros", "Unrecognized"),
        ({"external_id": ""}, "invalid_value", "external_id", "at least 1 character"),
        ({"external_id": "  "}, "invalid_request", "external_id", "1–200 characters"),
        ({"external_id": "x" * 201}, "invalid_value", "external_id", "at most 200"),
        ({"external_id": 12}, "invalid_value", "external_id", "valid string"),
        ({"external_id": "a\x00b"}, "invalid_value", "external_id", "NUL"),
        ({"kind": "done\x00"}, "invalid_value", "kind", "NUL"),
        ({"run_id": "\x00"}, "invalid_value", "run_id", "NUL"),
        ({"trace_id": "not-a-uuid"}, "invalid_value", "trace_id", "UUID"),
        ({"trace_id": "{" + str(uuid.uuid4()) + "}"}, "invalid_value", "trace_id", "UUID"),
        ({"trace_id": 5}, "invalid_value", "trace_id", "UUID"),
        ({"run_id": "r" * 65}, "invalid_value", "run_id", "at most 64"),
        ({"run_id": 5}, "invalid_value", "run_id", "valid string"),
        ({"note": "hi"}, "unknown_parameter", "note", "Unrecognized request argument"),
    ],
)
def test_a_bad_outcome_is_400_naming_the_parameter_and_nothing_is_written(
    http: httpx.Client,
    acme_key: Key,
    changes: dict[str, Any],
    code: str,
    param: str,
    says: str,
) -> None:
    before = stored(acme_key.workspace)

    response = record(http, acme_key, **changes)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert says in error["message"]
    assert stored(acme_key.workspace) == before


@pytest.mark.parametrize("missing", ["kind", "price_usd", "external_id"])
def test_a_missing_field_is_400_naming_it(http: httpx.Client, acme_key: Key, missing: str) -> None:
    sent = body()
    del sent[missing]

    response = http.post("/outcomes", headers=auth(acme_key), json=sent)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("missing_required_parameter", missing)


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[1]",
        b'{"kind": NaN}',
        b"",
        b'{"price_usd": ' + b"1" * 5000 + b"}",  # past Python's int digits limit
        b"[" * 100_000 + b"]" * 100_000,  # past Python's recursion limit
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(
    http: httpx.Client, acme_key: Key, content: bytes
) -> None:
    response = http.post("/outcomes", headers=auth(acme_key), content=content)

    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_json", "invalid_value")


def test_an_unpaired_surrogate_is_400(http: httpx.Client, acme_key: Key) -> None:
    content = b'{"kind": "k", "price_usd": "1", "external_id": "x\\ud800"}'

    response = http.post("/outcomes", headers=auth(acme_key), content=content)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "external_id"
    assert "surrogate" in response.json()["error"]["message"]


def test_a_nan_price_is_400(http: httpx.Client, acme_key: Key) -> None:
    content = f'{{"kind": "k", "external_id": "{ext()}", "price_usd": NaN}}'.encode()

    response = http.post("/outcomes", headers=auth(acme_key), content=content)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "price_usd"


# --- listing and fetching -------------------------------------------------------------------


def test_the_list_is_newest_first_and_pages_with_after(http: httpx.Client, acme_key: Key) -> None:
    mine = [record(http, acme_key).json()["id"] for _ in range(5)]
    expected = stored(acme_key.workspace)  # with any older outcomes of acme after mine

    pages, after = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"after": after} if after else {})}
        page = http.get("/outcomes", headers=auth(acme_key), params=params)
        assert page.status_code == 200, page.text
        pages.append(page.json())
        if not page.json()["has_more"]:
            break
        after = page.json()["data"][-1]["id"]

    listed = [o["id"] for p in pages for o in p["data"]]
    assert listed == expected
    assert listed[:5] == mine[::-1]
    assert all(p["object"] == "list" and len(p["data"]) <= 2 for p in pages)
    assert all(p["has_more"] for p in pages[:-1])


def test_the_default_page_is_20(http: httpx.Client, acme_key: Key) -> None:
    for _ in range(21):
        record(http, acme_key)

    page = http.get("/outcomes", headers=auth(acme_key)).json()

    assert len(page["data"]) == 20
    assert page["has_more"] is True


def test_the_list_filters_by_status_and_external_id(http: httpx.Client, acme_key: Key) -> None:
    kept = record(http, acme_key).json()
    disputed = record(http, acme_key).json()

    def dispute() -> None:
        owner = Membership.objects.select_related("workspace").get(
            workspace=acme_key.workspace, user__email="owner@acme.test"
        )
        outcome_dispute(
            outcome=Outcome.objects.get(pk=disputed["id"]), membership=owner, reason="not ours"
        )

    run_committed(dispute)

    by_status = http.get("/outcomes", headers=auth(acme_key), params={"status": "disputed"})
    pending = http.get("/outcomes", headers=auth(acme_key), params={"status": "pending"})
    by_id = http.get(
        "/outcomes", headers=auth(acme_key), params={"external_id": kept["external_id"]}
    )
    unknown = http.get("/outcomes", headers=auth(acme_key), params={"external_id": ext()})

    assert disputed["id"] in [o["id"] for o in by_status.json()["data"]]
    assert {o["status"] for o in by_status.json()["data"]} == {"disputed"}
    assert disputed["id"] not in [o["id"] for o in pending.json()["data"]]
    assert kept["id"] in [o["id"] for o in pending.json()["data"]]
    assert by_id.json() == {"object": "list", "data": [kept], "has_more": False}
    assert unknown.json() == {"object": "list", "data": [], "has_more": False}


def test_an_outcome_is_fetched_by_id(http: httpx.Client, acme_key: Key) -> None:
    recorded = record(http, acme_key).json()

    fetched = http.get(f"/outcomes/{recorded['id']}", headers=auth(acme_key))

    assert fetched.status_code == 200
    assert fetched.json() == recorded


@pytest.mark.parametrize(
    ("query", "param", "says"),
    [
        ("limit=0", "limit", "greater than or equal to 1"),
        ("limit=101", "limit", "less than or equal to 100"),
        ("limit=abc", "limit", "whole number"),
        ("limit=1.5", "limit", "whole number"),
        ("limit=%2B5", "limit", "whole number"),
        ("limit=", "limit", "whole number"),
        ("limit=1&limit=2", "limit", "once"),
        ("status=billed", "status", "'pending'"),
        ("status=", "status", "'pending'"),
        ("after=abc", "after", "whole number"),
        ("after=0", "after", "greater than or equal to 1"),
        ("after=99999999999999999999", "after", "whole number"),
        ("after=9223372036854775807", "after", "no outcome 9223372036854775807"),
        ("external_id=", "external_id", "at least 1 character"),
        ("external_id=a%00b", "external_id", "NUL"),
        ("order=asc", "order", "Unrecognized"),
    ],
)
def test_a_bad_list_parameter_is_400_naming_it(
    http: httpx.Client, acme_key: Key, query: str, param: str, says: str
) -> None:
    response = http.get(f"/outcomes?{query}", headers=auth(acme_key))

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert says in error["message"]


@pytest.mark.parametrize("outcome_id", ["9223372036854775807", "abc", "0", "-1", "1" * 25])
def test_an_unknown_or_malformed_id_is_404(
    http: httpx.Client, acme_key: Key, outcome_id: str
) -> None:
    response = http.get(f"/outcomes/{outcome_id}", headers=auth(acme_key))

    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("outcome_not_found", "outcome_id")


# --- who may ------------------------------------------------------------------------------


def test_new_keys_do_not_get_the_outcomes_scope_unless_chosen(
    make_key: MakeKey, http: httpx.Client
) -> None:
    default = make_key("acme")
    before = stored(default.workspace)

    answers = [
        http.post("/outcomes", headers=auth(default), json=body()),
        http.get("/outcomes", headers=auth(default)),
        http.get("/outcomes/1", headers=auth(default)),
    ]

    assert default.row.scopes == ["chat", "embeddings"]
    for answer in answers:
        assert answer.status_code == 403
        error = answer.json()["error"]
        assert (error["type"], error["code"]) == ("permission_error", "insufficient_scope")
        assert "may not use outcomes" in error["message"]
    assert stored(default.workspace) == before


def test_the_scope_is_offered_labelled_on_the_keys_page_and_the_cli(acme: Workspace) -> None:
    form = ApiKeyForm()
    out = io.StringIO()

    call_command(
        "apikey",
        "create",
        "--workspace",
        "acme",
        "--name",
        "bot",
        "--scopes",
        "outcomes",
        "--json",
        stdout=out,
    )

    boxes = {
        value: "checked" in tag
        for tag, value in re.findall(r'(<input[^>]*value="([a-z]+)"[^>]*>)', str(form["scopes"]))
    }
    assert boxes == {scope: scope in API_KEY_DEFAULT_SCOPES for scope in API_KEY_SCOPES}
    assert boxes["outcomes"] is False
    assert "record and read billable outcomes" in str(form["scopes"])
    assert "billed to this workspace" in str(form["scopes"])
    assert json.loads(out.getvalue())["scopes"] == ["outcomes"]


def test_no_key_is_401(http: httpx.Client) -> None:
    response = http.post("/outcomes", json=body())

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


# --- the router -----------------------------------------------------------------------------


def test_other_methods_are_405_naming_the_allowed_ones_and_other_paths_404(
    http: httpx.Client, acme_key: Key
) -> None:
    collection = http.delete("/outcomes", headers=auth(acme_key))
    item = http.post("/outcomes/5", headers=auth(acme_key), json=body())
    deeper = http.get("/outcomes/5/disputes", headers=auth(acme_key))
    slash = http.get("/outcomes/", headers=auth(acme_key))

    assert (collection.status_code, collection.headers["allow"]) == (405, "GET, POST")
    assert (item.status_code, item.headers["allow"]) == (405, "GET")
    assert item.json()["error"]["code"] == "method_not_allowed"
    assert (deeper.status_code, deeper.json()["error"]["code"]) == (404, "unknown_url")
    assert (slash.status_code, slash.json()["object"]) == (200, "list")


# --- tenant isolation ---------------------------------------------------------------------


def test_another_workspaces_key_neither_sees_nor_touches_its_outcomes(
    http: httpx.Client, acme_key: Key, globex_key: Key
) -> None:
    ours = record(http, acme_key, external_id="ticket-shared").json()

    fetched = http.get(f"/outcomes/{ours['id']}", headers=auth(globex_key))
    listed = http.get("/outcomes", headers=auth(globex_key), params={"limit": 100})
    by_external = http.get(
        "/outcomes", headers=auth(globex_key), params={"external_id": "ticket-shared"}
    )
    paged = http.get("/outcomes", headers=auth(globex_key), params={"after": ours["id"]})
    # the same external_id, another price: globex's own outcome, not a conflict with acme's
    theirs = record(http, globex_key, external_id="ticket-shared", price_usd="9")

    assert fetched.status_code == 404
    assert ours["id"] not in [o["id"] for o in listed.json()["data"]]
    assert by_external.json()["data"] == []
    assert (paged.status_code, paged.json()["error"]["param"]) == (400, "after")
    assert theirs.status_code == 201
    assert theirs.json()["id"] != ours["id"]
    assert http.get(f"/outcomes/{ours['id']}", headers=auth(acme_key)).json() == ours
    rows = run_committed(
        lambda: sorted(
            Outcome.objects.filter(external_id="ticket-shared").values_list(
                "workspace__slug", "price_micros"
            )
        )
    )
    assert rows == [("acme", 250_000), ("globex", 9_000_000)]


# --- rate limit -----------------------------------------------------------------------------


@pytest.mark.usefixtures("same_minute")
def test_outcome_requests_count_against_the_keys_rate_limit(
    http: httpx.Client, make_key: MakeKey
) -> None:
    # given a key allowed 3 requests a minute
    key = make_key("acme", scopes=["outcomes", "chat"], rate_limit_per_minute=3)

    # when it records, lists, asks for its models, then records again
    answers = [
        record(http, key),
        http.get("/outcomes", headers=auth(key)),
        http.get("/models", headers=auth(key)),
        record(http, key),
    ]

    # then the fourth request is refused with 429 and a retry-after, and records nothing
    assert [a.status_code for a in answers] == [201, 200, 200, 429]
    refused = answers[3].json()["error"]
    assert refused["code"] == "api_key_requests_per_minute_exceeded"
    assert 1 <= int(answers[3].headers["retry-after"]) <= 61
    assert stored(key.workspace) == [answers[0].json()["id"]]
