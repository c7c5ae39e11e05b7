"""Replay from the trace admin: a real gateway call in the platform workspace (feature
admin.replay, billed there), shown beside the original with a diff; a chosen alias or prompt
version; and clear messages when the alias or version is gone, the platform budget is spent or
the provider fails."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings

from apps.console.replay import answer_diff, platform_workspace
from apps.llm.prompts import clear_caches
from apps.traces.models import LlmCallLog, LlmTrace, LlmTraceRaw, TraceAccess
from apps.traces.services import call_records_flush
from apps.workspaces.ai import ai_settings_get
from apps.workspaces.models import PlanCode, User, Workspace
from tests.conftest import committed_system_workspace
from tests.console.admin_support import admin_client, admin_url, chat_trace, make_trace, support
from tests.fakes import FakeAnthropicServer
from tests.fakes.script import Fault
from tests.gateway_support import (
    ask,
    cleared_redis_namespace,
    gateway_settings,
    unique,
)

pytestmark = pytest.mark.django_db
__all__ = ["support"]  # fixtures


@pytest.fixture(autouse=True)
def _offline_glue() -> Iterator[None]:
    with gateway_settings():
        yield


@pytest.fixture(scope="module")
def _platform(django_db_setup: None, django_db_blocker: Any) -> Iterator[Workspace]:
    """The platform workspace, created as the first replay creates it, once for these tests."""

    def create() -> Workspace:
        with override_settings(PLATFORM_WORKSPACE=f"platform-{uuid.uuid4().hex[:8]}"):
            return platform_workspace()

    with committed_system_workspace(django_db_blocker, create) as workspace:
        yield workspace


@pytest.fixture
def platform(_platform: Workspace, db: None, settings: Any) -> Iterator[Workspace]:
    """The platform workspace with a clean Redis namespace (deleted before and after), so
    replays never meet budgets other tests spent."""
    settings.PLATFORM_WORKSPACE = _platform.slug
    with cleared_redis_namespace(_platform.schema_name):
        yield _platform


def _replay(client: Client, trace: LlmTrace, **data: str) -> str:
    response = client.post(admin_url("traces_llmtrace_replay", trace.pk), data)
    assert response.status_code == 200
    return response.content.decode()


def _new_trace_id(trace: LlmTrace) -> str:
    (access,) = TraceAccess.objects.filter(trace_id=trace.trace_id, action="replay")
    return str(access.detail["new_trace_id"])


def test_the_platform_workspace_is_a_system_workspace_made_once(platform: Workspace) -> None:
    assert platform.plan == PlanCode.ENTERPRISE
    assert platform_workspace() == platform
    assert not platform.memberships.exclude(user__email="system@system.invalid").exists()


def test_a_replay_runs_in_the_platform_workspace_and_shows_a_diff(
    support: User, acme: Workspace, owner: User, platform: Workspace
) -> None:
    original = chat_trace(acme, owner, ask(unique("Explain tenant schemas")))
    # the recorded answer differs from what the model says now
    original.response = "An outdated answer nobody wants."
    original.save(update_fields=["response"])
    LlmTraceRaw.objects.filter(trace=original).update(response=original.response)

    html = _replay(admin_client(support), original)

    assert 'data-testid="replay-diff"' in html
    assert "<del>An outdated answer nobody wants.</del><ins>" in html
    assert "<ins>" in html
    assert "An outdated answer nobody wants." in html  # the original, beside the new answer
    call_records_flush()
    new_id = _new_trace_id(original)
    assert new_id in html
    replayed = LlmCallLog.objects.get(trace_id=new_id)
    assert replayed.workspace_id == platform.pk  # billed to the platform, not to acme
    assert replayed.feature == "admin.replay"
    assert (replayed.actor_type, replayed.actor_id) == ("user", str(support.pk))
    assert replayed.alias == original.call.alias
    new_trace = LlmTrace.objects.get(trace_id=new_id)
    assert new_trace.messages == original.messages
    assert new_trace.metadata == {"replay_of": str(original.trace_id)}
    assert not LlmCallLog.objects.filter(workspace=acme, feature="admin.replay").exists()


def test_a_replay_with_another_alias_uses_that_alias(
    support: User, acme: Workspace, owner: User, platform: Workspace
) -> None:
    original = chat_trace(acme, owner, ask(unique("Name three rivers"), alias="smart"))

    html = _replay(admin_client(support), original, alias="fast")

    call_records_flush()
    replayed = LlmCallLog.objects.get(trace_id=_new_trace_id(original))
    assert (replayed.alias, replayed.model) == ("fast", "local-fast")
    assert "fast → local/local-fast" in html


def test_a_replay_sends_the_unmasked_messages_while_they_are_kept(
    support: User, acme: Workspace, platform: Workspace
) -> None:
    trace = make_trace(acme, messages=[{"role": "user", "content": "Write to [EMAIL]"}])
    LlmTraceRaw.objects.create(
        trace=trace,
        workspace=acme,
        messages=[{"role": "user", "content": "Write to jane@example.com"}],
        created_at=trace.created_at,
    )
    client = admin_client(support)

    form = client.get(admin_url("traces_llmtrace_replay", trace.pk)).content.decode()
    html = _replay(client, trace)

    assert "<strong>unmasked</strong> messages" in form
    assert "unmasked messages" in html
    (access,) = TraceAccess.objects.filter(trace_id=trace.trace_id, action="replay")
    assert access.detail["used_raw"] is True


def test_a_replay_says_when_it_sends_the_masked_copy(support: User, acme: Workspace) -> None:
    trace = make_trace(acme)

    form = admin_client(support).get(admin_url("traces_llmtrace_replay", trace.pk))

    assert "<strong>masked</strong> messages" in form.content.decode()


def test_a_trace_whose_alias_was_removed_is_offered_the_current_aliases(
    support: User, acme: Workspace, platform: Workspace
) -> None:
    trace = make_trace(acme, alias="legacy-smart")
    client = admin_client(support)

    form = client.get(admin_url("traces_llmtrace_replay", trace.pk)).content.decode()
    html = _replay(client, trace)

    expected = "The alias “legacy-smart” is no longer in the routing table; choose one of: "
    assert expected in form
    assert expected in html
    assert "extract, fast, reasoning, smart" in html
    assert not TraceAccess.objects.filter(trace_id=trace.trace_id).exclude(action="view").exists()
    assert not LlmCallLog.objects.filter(workspace=platform).exists()
    # and choosing a current alias replays it
    assert 'data-testid="replay-diff"' in _replay(client, trace, alias="smart")


def test_an_unknown_alias_or_prompt_version_is_refused_with_the_choices(
    support: User, acme: Workspace, platform: Workspace
) -> None:
    plain = make_trace(acme)
    prompted = make_trace(acme, prompt_name="chat.system", prompt_version="v9")
    client = admin_client(support)

    assert "choose one of: extract, fast" in _replay(client, plain, alias="nope")
    form = client.get(admin_url("traces_llmtrace_replay", prompted.pk)).content.decode()
    assert "Prompt chat.system has no version v9 any more; choose one of: v1" in form
    html = _replay(client, prompted, prompt_version="v9")
    assert "Prompt chat.system has no version v9 any more; choose one of: v1" in html
    assert not LlmCallLog.objects.filter(workspace=platform).exists()


V1 = "---\nrole: system\nalias: smart\n---\nYou answer for {{ workspace_name }}, politely.\n"
V2 = "---\nrole: system\nalias: smart\n---\nYou answer for {{ workspace_name }}, tersely.\n"
SCHEMA = {
    "type": "object",
    "properties": {"workspace_name": {"type": "string", "minLength": 1}},
    "required": ["workspace_name"],
    "additionalProperties": False,
}


@pytest.fixture
def prompts(tmp_path: Path, settings: Any) -> Iterator[Path]:
    """A prompt library with `demo.persona` v1 and v2."""
    folder = tmp_path / "prompts" / "demo.persona"
    folder.mkdir(parents=True)
    (folder / "v1.md").write_text(V1)
    (folder / "v2.md").write_text(V2)
    (folder / "schema.json").write_text(json.dumps(SCHEMA))
    settings.PROMPTS_DIR = str(tmp_path / "prompts")
    settings.PROMPT_VERSIONS = {}
    clear_caches()
    yield folder
    clear_caches()


def test_a_replay_with_another_prompt_version_renders_the_system_prompt_again(
    support: User, acme: Workspace, platform: Workspace, prompts: Path
) -> None:
    trace = make_trace(
        acme,
        prompt_name="demo.persona",
        prompt_version="v1",
        messages=[
            {"role": "system", "content": "You answer for Acme, politely."},
            {"role": "user", "content": unique("Hello")},
        ],
    )

    _replay(admin_client(support), trace, prompt_version="v2")

    call_records_flush()
    new_id = _new_trace_id(trace)
    replayed = LlmTrace.objects.select_related("call").get(trace_id=new_id)
    assert replayed.messages[0]["content"] == "You answer for Acme, tersely.\n"
    assert replayed.messages[1]["content"] == trace.messages[1]["content"]  # the rest is kept
    assert (replayed.call.prompt_name, replayed.call.prompt_version) == ("demo.persona", "v2")


def test_a_recorded_version_whose_file_is_gone_can_still_be_rendered_with_another(
    support: User, acme: Workspace, platform: Workspace, prompts: Path
) -> None:
    (prompts / "v1.md").unlink()
    clear_caches()
    trace = make_trace(
        acme,
        prompt_name="demo.persona",
        prompt_version="v1",
        messages=[{"role": "system", "content": "You answer for Acme, tersely."}],
    )

    html = _replay(admin_client(support), trace, prompt_version="v2")

    assert 'data-testid="replay-diff"' in html


def test_a_replay_while_the_platform_budget_is_spent_is_refused(
    support: User, acme: Workspace, platform: Workspace
) -> None:
    ai = ai_settings_get(workspace=platform)
    ai.daily_token_limit = 0
    ai.save()
    trace = make_trace(acme, messages=[{"role": "user", "content": unique("Hi")}])

    html = _replay(admin_client(support), trace)

    assert "Replay refused: the platform workspace" in html
    assert "workspace_day_tokens" in html
    assert 'data-testid="replay-diff"' not in html
    (access,) = TraceAccess.objects.filter(trace_id=trace.trace_id, action="replay")
    assert access.detail["scope"] == "workspace_day_tokens"


def test_a_provider_error_is_shown_as_a_message(
    support: User, acme: Workspace, platform: Workspace
) -> None:
    trace = make_trace(acme, messages=[{"role": "user", "content": unique("Hi")}])
    with FakeAnthropicServer() as server:
        server.fail_next(Fault.http(400, message="messages: bad shape"))
        with gateway_settings(
            ANTHROPIC_API_KEY="sk-ant-test-key", ANTHROPIC_BASE_URL=server.base_url
        ):
            html = _replay(admin_client(support), trace)

    assert "The replay failed:" in html
    assert 'data-testid="replay-diff"' not in html


def test_a_malformed_recorded_message_is_refused(
    support: User, acme: Workspace, platform: Workspace
) -> None:
    trace = make_trace(acme, messages=[{"role": "wizard", "content": "abracadabra"}])

    html = _replay(admin_client(support), trace)

    assert "Recorded message 0 is malformed" in html


def test_the_diff_escapes_html() -> None:
    diff = answer_diff("Say <b>hi</b> now", "Say <script>x</script> now")

    assert "<script>" not in diff
    assert "&lt;script&gt;" in diff
    assert diff.startswith("Say <del>&lt;b&gt;hi&lt;/b&gt; </del><ins>&lt;script&gt;")
    assert diff.endswith("</ins>now")
