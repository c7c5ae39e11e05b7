"""Switching a workspace's documents to another embedding model in the background
(apps/rag/reembed.py): search keeps the old vectors until every chunk has a new one, then
everything switches at once; a switch killed midway resumes; other workspaces are untouched.

The old model is the offline all-MiniLM-L6-v2 (384-d); the new one OpenAI's
text-embedding-3-small, answered by the fake OpenAI server on loopback (8-d vectors) once the
platform has an OpenAI key, which is how the `embed` alias's route changes in production."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.management import CommandError, call_command
from django.test import override_settings
from django_tenants.utils import schema_context

from apps.common.errors import ApplicationError
from apps.rag.models import Chunk, Document, EmbeddingIndex
from apps.rag.reembed import reembed_start, reembed_step
from apps.rag.retrieval import search_chunks
from apps.rag.services import document_add, document_index
from apps.workspaces.models import User, Workspace
from tests.conftest import host_client
from tests.fakes import FakeOpenAIServer
from tests.gateway_support import gateway_settings

pytestmark = pytest.mark.django_db

OLD = "all-MiniLM-L6-v2"
NEW = "text-embedding-3-small"

GUIDE = b"""# Ocelot deployment guide

The ocelot service runs on port 7410 and keeps its state in PostgreSQL.

## Backups

Backups run nightly at 02:00 UTC and are kept for 35 days.

## Restores

To restore, stop the service, run `ocelot restore --from <backup>` and start it again.
"""

LEAVE = b"""# Leave policy

Everyone gets 28 days of paid leave a year, plus public holidays.

## Sick leave

Tell your manager before 10:00 on the first day you are ill.
"""


@pytest.fixture(autouse=True)
def _offline_glue(fresh_redis: redis.Redis) -> Iterator[None]:
    with gateway_settings():
        yield


@pytest.fixture
def openai() -> Iterator[FakeOpenAIServer]:
    """The platform gets an OpenAI key: the `embed` alias now answers with NEW."""
    with (
        FakeOpenAIServer() as server,
        gateway_settings(OPENAI_API_KEY="sk-platform", OPENAI_BASE_URL=server.base_url),
    ):
        yield server


def _indexed(workspace: Workspace, user: User, data: bytes, name: str) -> Document:
    with schema_context(workspace.schema_name):
        document = document_add(user=user, data=data, filename=name, mime="text/markdown")
        document_index(workspace=workspace, document_id=document.pk)
        document.refresh_from_db()
        assert document.status == "ready"
        return document


def _models() -> set[str]:
    return set(Chunk.objects.values_list("embedding_model", flat=True))


def _dense(workspace: Workspace, query: str) -> list[int]:
    hits = search_chunks(workspace=workspace, query=query, k=5, mode="dense")
    return [h.chunk_id for h in hits]


def _embedded_inputs(server: FakeOpenAIServer) -> int:
    return sum(len(r.body["input"]) for r in server.requests if r.path.endswith("/embeddings"))


def _start(workspace: Workspace, capture: Any, **options: Any) -> EmbeddingIndex:
    # the task is queued after the commit; the test runs its steps itself
    with capture(execute=False):
        return reembed_start(workspace=workspace, **options)


def test_search_keeps_the_old_vectors_until_every_chunk_is_switched(
    acme: Workspace,
    owner: User,
    openai: FakeOpenAIServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given: two documents indexed with the offline model, then the alias moves to OpenAI
    with gateway_settings():
        _indexed(acme, owner, GUIDE, "guide.md")
        _indexed(acme, owner, LEAVE, "leave.md")
    with schema_context(acme.schema_name):
        total = Chunk.objects.count()
        before = _dense(acme, "when do backups run")
    assert before
    # when the switch starts
    index = _start(acme, django_capture_on_commit_callbacks)
    # then nothing is searched differently yet
    assert (index.status, index.model, index.target_model) == ("switching", OLD, NEW)
    assert (index.done, index.total) == (0, total)
    with schema_context(acme.schema_name):
        assert _dense(acme, "when do backups run") == before  # the query embedded by OLD
        # when one batch of one chunk is done
        with override_settings(RAG_EMBED_BATCH=1):
            assert reembed_step(workspace=acme, batches=1) == "running"
        # then that chunk holds both vectors, and search still reads the old ones only
        assert Chunk.objects.filter(next_model=NEW).count() == 1
        assert _models() == {OLD}
        assert _dense(acme, "when do backups run") == before
        assert search_chunks(workspace=acme, query="backups nightly", k=3)  # hybrid too
        # when the rest is done
        assert reembed_step(workspace=acme) == "switched"
        # then every chunk and document switched at once, and search embeds with NEW
        assert _models() == {NEW}
        assert set(Chunk.objects.values_list("dims", flat=True)) == {8}
        assert not Chunk.objects.exclude(next_model="").exists()
        assert set(Document.objects.values_list("embedding_model", flat=True)) == {NEW}
        index = EmbeddingIndex.objects.get()
        assert (index.provider, index.model, index.status) == ("openai", NEW, "idle")
        assert (index.done, index.total) == (total, total)
        assert len(_dense(acme, "when do backups run")) == min(5, total)


def test_a_switch_killed_midway_resumes_where_it_stopped(
    acme: Workspace,
    owner: User,
    openai: FakeOpenAIServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a switch whose worker died after two chunks (its next step never ran)
    with gateway_settings():
        _indexed(acme, owner, GUIDE, "guide.md")
        _indexed(acme, owner, LEAVE, "leave.md")
    _start(acme, django_capture_on_commit_callbacks)
    with schema_context(acme.schema_name), override_settings(RAG_EMBED_BATCH=1):
        total = Chunk.objects.count()
        assert reembed_step(workspace=acme, batches=2) == "running"
    sent = _embedded_inputs(openai)
    # when it is started again (the command, or Celery redelivering the step)
    index = _start(acme, django_capture_on_commit_callbacks)
    # then it carries on from the two chunks done
    assert (index.status, index.done, index.total) == ("switching", 2, total)
    with schema_context(acme.schema_name):
        assert _models() == {OLD}
        assert reembed_step(workspace=acme) == "switched"
        assert _models() == {NEW}
    # only the chunks not done were embedded again (plus the start's one-word probe)
    assert _embedded_inputs(openai) - sent == (total - 2) + 1


def test_a_document_indexed_during_the_switch_is_searchable_at_once_and_switched_too(
    acme: Workspace,
    owner: User,
    openai: FakeOpenAIServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a switch under way
    with gateway_settings():
        _indexed(acme, owner, GUIDE, "guide.md")
    _start(acme, django_capture_on_commit_callbacks)
    # when a document is indexed meanwhile
    late = _indexed(acme, owner, LEAVE, "leave.md")
    # then it is embedded with the model search uses now, and found
    with schema_context(acme.schema_name):
        assert set(
            Chunk.objects.filter(document=late).values_list("embedding_model", flat=True)
        ) == {OLD}
        hits = search_chunks(workspace=acme, query="paid leave days", k=3, mode="dense")
        assert late.pk in {h.document_id for h in hits}
        # and the switch takes it along before switching
        assert reembed_step(workspace=acme) == "switched"
        assert _models() == {NEW}
        late.refresh_from_db()
        assert (late.status, late.embedding_model) == ("ready", NEW)


def test_another_workspace_keeps_its_model_and_its_search(
    acme: Workspace,
    globex: Workspace,
    owner: User,
    openai: FakeOpenAIServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given both workspaces indexed with the offline model
    with gateway_settings():
        _indexed(acme, owner, GUIDE, "guide.md")
        _indexed(globex, owner, GUIDE, "guide.md")
    # when acme switches to the model its alias now answers with
    _start(acme, django_capture_on_commit_callbacks)
    with schema_context(acme.schema_name):
        assert reembed_step(workspace=acme) == "switched"
    # then globex's vectors, route and search are as they were (its queries pinned to OLD,
    # though the alias answers with NEW for it too), and no switch runs there
    with schema_context(globex.schema_name):
        assert _models() == {OLD}
        assert not Chunk.objects.exclude(next_model="").exists()
        index = EmbeddingIndex.objects.get()
        assert (index.model, index.status) == (OLD, "idle")
        assert reembed_step(workspace=globex) == "idle"
        assert _dense(globex, "when do backups run")


def test_naming_the_model_in_use_stops_a_switch(
    acme: Workspace,
    owner: User,
    openai: FakeOpenAIServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with gateway_settings():
        _indexed(acme, owner, GUIDE, "guide.md")
    _start(acme, django_capture_on_commit_callbacks)
    with schema_context(acme.schema_name), override_settings(RAG_EMBED_BATCH=1):
        reembed_step(workspace=acme, batches=1)
    index = _start(acme, django_capture_on_commit_callbacks, model=f"local:{OLD}")
    assert (index.status, index.target_model) == ("idle", "")
    with schema_context(acme.schema_name):
        assert not Chunk.objects.exclude(next_model="").exists()
        assert reembed_step(workspace=acme) == "idle"
        assert _models() == {OLD}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("nonsense", "Name the model as provider:model"),
        (f"openai:{NEW}", "cannot be used"),  # no OpenAI key: the offline model would answer
        (f"local:{OLD}", "already embedded with local:all-MiniLM-L6-v2"),
        ("local:another-model", "cannot be used"),
    ],
)
def test_a_model_that_cannot_be_switched_to_is_refused_with_a_reason(
    acme: Workspace,
    owner: User,
    model: str,
    message: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _indexed(acme, owner, GUIDE, "guide.md")
    with pytest.raises(ApplicationError, match=message) as refused:
        _start(acme, django_capture_on_commit_callbacks, model=model)
    assert refused.value.field == "model"
    with schema_context(acme.schema_name):
        assert EmbeddingIndex.objects.get().status == "idle"
        assert not Chunk.objects.exclude(next_model="").exists()


def test_the_command_starts_a_switch_and_refuses_an_unknown_workspace(
    acme: Workspace,
    owner: User,
    openai: FakeOpenAIServer,
    django_capture_on_commit_callbacks: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with gateway_settings():
        _indexed(acme, owner, GUIDE, "guide.md")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("rag", "reembed", "--workspace", "acme")
    assert f"from {OLD} to {NEW} on Celery" in capsys.readouterr().out
    assert any(c.__qualname__ == "_enqueue" for c in callbacks)  # the task, after the commit
    with pytest.raises(CommandError, match="No workspace “nope”"):
        call_command("rag", "reembed", "--workspace", "nope")
    with pytest.raises(CommandError, match="Name the model as provider:model"):
        call_command("rag", "reembed", "--workspace", "acme", "--model", "bogus")


def test_the_documents_page_shows_the_switch_to_members_only(
    acme: Workspace,
    owner: User,
    outsider: User,
    openai: FakeOpenAIServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with gateway_settings():
        _indexed(acme, owner, GUIDE, "guide.md")
    _start(acme, django_capture_on_commit_callbacks)
    page = host_client("acme.localhost", owner).get("/documents/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"Switching to {NEW}: 0 of" in html
    assert f"Search keeps using {OLD}" in html
    assert host_client("acme.localhost", outsider).get("/documents/").status_code == 404


def test_the_step_task_is_registered_under_the_name_the_switch_sends() -> None:
    # sent by name (apps/rag/reembed.py imports no task module): a typo would queue nothing
    from celery import current_app

    from apps.rag import tasks
    from apps.rag.reembed import REEMBED_TASK

    assert REEMBED_TASK in current_app.tasks
    assert tasks.reembed_documents.name == REEMBED_TASK


def test_the_step_task_runs_in_the_sending_workspace(
    acme: Workspace,
    owner: User,
    openai: FakeOpenAIServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a switch started in acme
    with gateway_settings():
        _indexed(acme, owner, GUIDE, "guide.md")
    _start(acme, django_capture_on_commit_callbacks)
    # when the task body runs in acme's schema (as tenant-schemas-celery runs it)
    from apps.rag.tasks import reembed_documents

    with schema_context(acme.schema_name), django_capture_on_commit_callbacks(execute=False):
        outcome = reembed_documents.run()
    # then it switched acme
    assert outcome == "switched"
    with schema_context(acme.schema_name):
        assert _models() == {NEW}


def test_a_schema_whose_vectors_are_all_gone_follows_the_alias_again(acme: Workspace) -> None:
    """The pin holds the vectors' model; with no vector left (every document deleted) there is
    nothing to stay compatible with, and the next document is embedded as the alias says."""
    from apps.rag.embedder import index_route, index_start

    with schema_context(acme.schema_name):
        EmbeddingIndex.objects.update_or_create(
            pk=1, defaults={"provider": "openai", "model": "text-embedding-3-large"}
        )
        assert not Chunk.objects.exclude(embedding_model="").exists()

        assert index_route() is None  # queries: the alias
        with gateway_settings():
            index_start(acme)
        assert EmbeddingIndex.objects.get(pk=1).model != "text-embedding-3-large"
