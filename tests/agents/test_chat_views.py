"""Chat pages: conversations per user, budget banner and panel, ratings, and the sanitised
rendering of model output."""

from __future__ import annotations

import time
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from django_tenants.utils import schema_context

from apps.agents.chat.rendering import render_markdown
from apps.agents.chat.services import conversation_create
from apps.agents.models import Conversation, Message
from apps.workspaces.models import User, Workspace
from tests.conftest import host_client
from tests.factories import MessageFactory
from tests.gateway_support import redis_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(acme: Workspace, member: User) -> Conversation:
    with schema_context(acme.schema_name):
        return conversation_create(user=member)


@pytest.fixture
def answer(acme: Workspace, conversation: Conversation) -> Message:
    with schema_context(acme.schema_name):
        return MessageFactory.create(conversation=conversation, content="**Hello**")


def test_the_chat_page_offers_a_first_conversation(member: User) -> None:
    page = host_client("acme.localhost", member).get("/chat/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="start-chat"' in html
    assert "offline local model" in html  # no provider key in tests


def test_new_opens_a_conversation_and_chat_goes_to_the_latest(
    acme: Workspace, member: User
) -> None:
    client = host_client("acme.localhost", member)
    created = client.post("/chat/new/")
    assert created.status_code == 302
    assert client.get("/chat/")["Location"] == created["Location"]
    page = client.get(created["Location"])
    assert 'data-testid="composer"' in page.content.decode()


def test_another_users_conversation_is_404(owner: User, conversation: Conversation) -> None:
    page = host_client("acme.localhost", owner).get(f"/chat/c/{conversation.pk}/")
    assert page.status_code == 404


def test_a_globex_member_cannot_open_acmes_chat(outsider: User, conversation: Conversation) -> None:
    assert (
        host_client("acme.localhost", outsider).get(f"/chat/c/{conversation.pk}/").status_code
        == 404
    )
    # and in globex's own schema the id names nothing
    assert (
        host_client("globex.localhost", outsider).get(f"/chat/c/{conversation.pk}/").status_code
        == 404
    )


@pytest.fixture
def day_tokens(acme: Workspace) -> Iterator[str]:
    """The Redis counter of acme's tokens today, removed afterwards."""
    day = time.strftime("%Y-%m-%d", time.gmtime())
    key = f"{acme.schema_name}:budget:workspace_day_tokens:{day}"
    client = redis_client()
    saved: dict[Any, Any] = dict(client.hgetall(key))  # type: ignore[arg-type,unused-ignore]
    yield key
    client.delete(key)
    if saved:
        client.hset(key, mapping=saved)


def test_a_banner_warns_at_80_percent_and_a_panel_replaces_the_composer_at_100(
    member: User, conversation: Conversation, day_tokens: str
) -> None:
    client, url = host_client("acme.localhost", member), f"/chat/c/{conversation.pk}/"
    limit = 50_000  # the free plan's daily tokens

    redis_client().hset(day_tokens, mapping={"used": int(limit * 0.85), "reserved": 0})
    warned = client.get(url).content.decode()
    redis_client().hset(day_tokens, mapping={"used": limit, "reserved": 0})
    blocked = client.get(url).content.decode()

    assert 'data-testid="budget-banner"' in warned
    assert "85 %" in warned
    assert 'data-testid="composer"' in warned
    assert 'data-testid="budget-panel"' in blocked
    assert "resets at" in blocked
    assert 'data-testid="composer"' not in blocked


def test_a_rating_is_stored_and_a_bad_one_explained(
    acme: Workspace, member: User, answer: Message
) -> None:
    client = host_client("acme.localhost", member)

    good = client.post(f"/chat/m/{answer.pk}/feedback/", {"rating": "1", "comment": " Clear "})
    bad = client.post(f"/chat/m/{answer.pk}/feedback/", {"rating": "5"})

    assert good.status_code == 200
    assert 'aria-pressed="true"' in good.content.decode()
    assert bad.status_code == 400
    assert "thumbs up or thumbs down" in bad.content.decode()
    with schema_context(acme.schema_name):
        answer.refresh_from_db()
    assert (answer.rating, answer.rating_comment) == (1, "Clear")


def test_only_the_conversations_owner_can_rate(owner: User, answer: Message) -> None:
    response = host_client("acme.localhost", owner).post(
        f"/chat/m/{answer.pk}/feedback/", {"rating": "1"}
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "payload",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        "![pixel](https://tracker.example/p.png)",
        '<svg onload="alert(1)"></svg>',
        "[x](JaVaScRiPt:alert(1))",
    ],
)
def test_model_output_renders_inert(payload: str) -> None:
    html = render_markdown(f"Here: {payload} **done**")

    elements = _elements(html)

    assert {tag for tag, _ in elements} <= {"p", "strong", "a"}
    for _tag, attributes in elements:
        assert not [name for name in attributes if name.startswith("on")]
        href = (attributes.get("href") or "").strip().lower()
        assert not href or href.startswith(("https:", "http:", "mailto:"))
    assert "<strong>done</strong>" in html


def _elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every element the browser would build from `html`, with its attributes."""
    found: list[tuple[str, dict[str, str | None]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, dict(attrs)))

    Collector().feed(html)
    return found
