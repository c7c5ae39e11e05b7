"""The staff cost and latency dashboard: who may open it, what its filters show, and that bad
filter values are ignored with a message rather than failing the page."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.contrib.auth.models import Group

from apps.traces.services import call_records_flush
from apps.workspaces.models import User, Workspace
from tests.conftest import host_client
from tests.factories import UserFactory
from tests.traces.rollup_support import CallRecordFactory, queue

pytestmark = pytest.mark.django_db

URL = "/admin/traces/dashboard/"


def _staff(group: str | None = None, *, superuser: bool = False) -> User:
    user = UserFactory.create(is_staff=True, is_superuser=superuser)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def traffic(acme: Workspace, globex: Workspace) -> dict[str, str]:
    """Calls of both workspaces, each with a feature and model only it uses."""
    tag = uuid.uuid4().hex[:8]
    names = {
        "acme_feature": f"acme-feature-{tag}",
        "acme_model": f"acme-model-{tag}",
        "globex_feature": f"globex-feature-{tag}",
        "globex_model": f"globex-model-{tag}",
    }
    records = [
        CallRecordFactory.build(
            workspace_id=ws.pk,
            schema=ws.schema_name,
            feature=names[f"{ws.slug}_feature"],
            model=names[f"{ws.slug}_model"],
        )
        for ws in (acme, globex)
        for _ in range(40)
    ]
    queue(records)
    call_records_flush()
    return names


def _data(html: str) -> dict[str, object]:
    start = html.index('<script id="dashboard-data" type="application/json">')
    body = html[start:].split(">", 1)[1].split("</script>", 1)[0]
    return dict(json.loads(body))


@pytest.mark.parametrize(
    ("group", "superuser"), [("support", False), ("finance", False), (None, True)]
)
def test_support_finance_and_superusers_see_the_dashboard(
    traffic: dict[str, str], group: str | None, superuser: bool
) -> None:
    response = host_client("localhost", _staff(group, superuser=superuser)).get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="traces-dashboard"' in html
    assert "vendor/chart.umd.min.js" in html
    assert "approximations" in html  # percentiles say what they are
    data = _data(html)
    assert traffic["acme_model"] in data["latency"]["models"]  # type: ignore[index]


def test_plain_staff_are_refused_and_others_sent_to_log_in(member: User) -> None:
    assert host_client("localhost", _staff()).get(URL).status_code == 403
    for client in (host_client("localhost"), host_client("localhost", member)):
        response = client.get(URL)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_the_workspace_filter_shows_that_workspace_only(
    acme: Workspace, traffic: dict[str, str]
) -> None:
    client = host_client("localhost", _staff("finance"))
    params = {"workspace": "acme", "days": "7"}

    html = client.get(URL, params).content.decode()

    assert traffic["acme_feature"] in html
    assert traffic["acme_model"] in html
    assert traffic["globex_feature"] not in html
    assert traffic["globex_model"] not in html
    data = _data(html)
    labels = {d["label"] for d in data["cost"]["workspace"]}  # type: ignore[index]
    assert labels == {acme.name}

    # when more of acme's calls arrive, acme's figures move by exactly theirs (other tests may
    # have left acme traffic of their own, so the check is on the difference)
    more = CallRecordFactory.build_batch(
        25, workspace_id=acme.pk, schema=acme.schema_name, feature=traffic["acme_feature"]
    )
    queue(more)
    call_records_flush()
    after_html = client.get(URL, params).content.decode()
    after = _data(after_html)

    assert _total_calls(after_html) - _total_calls(html) == len(more)
    cost = sum(sum(d["data"]) for d in after["cost"]["workspace"])  # type: ignore[index,misc]
    cost -= sum(sum(d["data"]) for d in data["cost"]["workspace"])  # type: ignore[index,misc]
    assert cost == pytest.approx(sum(r.cost_micros for r in more) / 1_000_000)
    tokens = after["tokens"]
    assert tokens["resolution"] == "hour"  # type: ignore[index]
    per_minute: list[float] = tokens["per_minute"]  # type: ignore[index]
    before_per_minute: list[float] = data["tokens"]["per_minute"]  # type: ignore[index]
    added = sum(per_minute) - sum(before_per_minute)
    produced = sum(r.input_tokens + r.output_tokens for r in more)
    assert abs(added * 60 - produced) <= 0.05 * 60 * len(per_minute)  # rounding


def _total_calls(html: str) -> int:
    match = re.search(r'data-testid="total-calls">([\d,]+)<', html)
    assert match, "no total-calls figure on the page"
    return int(match.group(1).replace(",", ""))


def test_malformed_filters_are_ignored_with_a_message(traffic: dict[str, str]) -> None:
    client = host_client("localhost", _staff("support"))

    response = client.get(URL, {"days": "forever", "workspace": "no-such-place"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Ignored the period filter" in html
    assert "Ignored the workspace filter: there is no workspace “no-such-place”." in html
    assert traffic["globex_model"] in html  # the defaults: all workspaces, 30 days
    assert _data(html)["tokens"]["resolution"] == "day"  # type: ignore[index]


def test_the_admin_index_links_the_dashboard() -> None:
    html = host_client("localhost", _staff("support")).get("/admin/").content.decode()
    assert f'href="{URL}"' in html
