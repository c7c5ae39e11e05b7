"""Document limits come from the workspace's plan: how many documents it holds and how large
each may be, enforced by `document_add` and `document_add_url` with messages naming the plan
and the limit. Plans without limits of their own (pro, a custom plan) take the settings."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django_tenants.utils import schema_context

from apps.billing.models import Plan
from apps.billing.plans import plan_document_limits
from apps.common.errors import ApplicationError
from apps.rag.models import Document
from apps.rag.services import collection_default, document_add, document_add_url
from apps.workspaces.models import User, Workspace
from tests.asgi_server import run_committed

from .conftest import OnPlan

pytestmark = pytest.mark.django_db

NOTES = b"Plain notes about the kiln."


def _fill(count: int) -> None:
    """`count` documents in the current schema, as rows (the limit counts rows)."""
    collection = collection_default()
    Document.objects.bulk_create(
        Document(collection=collection, title=f"n{i}", source="text", content_hash="")
        for i in range(count)
    )


def _add(user: User, data: bytes = NOTES) -> Document:
    return document_add(user=user, data=data, filename="notes.txt", mime="text/plain")


def test_each_plan_has_its_limits_and_pro_takes_the_settings(
    acme: Workspace, on_plan: OnPlan, settings: Any
) -> None:
    settings.RAG_MAX_DOCUMENTS, settings.RAG_MAX_FILE_BYTES = 1234, 5_000_000

    limits = {code: plan_document_limits(workspace=on_plan(code)) for code in ("free", "pro")}
    limits["enterprise"] = plan_document_limits(workspace=on_plan("enterprise"))

    assert [(v.plan, v.max_documents, v.max_file_bytes) for v in limits.values()] == [
        ("Free", 100, 10_000_000),
        ("Pro", 1234, 5_000_000),
        ("Enterprise", 20_000, 50_000_000),
    ]


def test_a_custom_plan_takes_the_settings_and_an_unknown_code_free_s_limits(
    acme: Workspace, on_plan: OnPlan, settings: Any
) -> None:
    settings.RAG_MAX_DOCUMENTS, settings.RAG_MAX_FILE_BYTES = 7, 7000
    Plan.objects.create(code="team", name="Team", day_tokens=1, user_day_requests=1)

    team = plan_document_limits(workspace=on_plan("team"))
    legacy = plan_document_limits(workspace=on_plan("legacy"))

    assert (team.plan, team.max_documents, team.max_file_bytes) == ("Team", 7, 7000)
    assert (legacy.plan, legacy.max_documents) == ("Free", 100)


def test_the_free_plan_refuses_the_101st_document_naming_the_plan(
    acme: Workspace, owner: User
) -> None:
    with schema_context(acme.schema_name):
        _fill(99)
        _add(owner)  # the 100th

        with pytest.raises(ApplicationError) as refused:
            _add(owner)

        assert refused.value.message == (
            "This workspace holds 100 documents, the most the Free plan allows (100); "
            "delete some first."
        )
        assert (refused.value.status, refused.value.code) == (409, "document_limit_reached")
        assert Document.objects.count() == 100


def test_another_plan_holds_more_documents(acme: Workspace, owner: User, on_plan: OnPlan) -> None:
    on_plan("enterprise")
    with schema_context(acme.schema_name):
        _fill(100)

        added = _add(owner)

        assert added.status == "queued"
        assert Document.objects.count() == 101


def test_a_url_document_counts_against_the_plan_too(
    acme: Workspace, owner: User, on_plan: OnPlan, settings: Any
) -> None:
    on_plan("pro")
    settings.RAG_MAX_DOCUMENTS = 3
    with schema_context(acme.schema_name):
        _fill(3)
        with pytest.raises(ApplicationError) as refused:
            document_add_url(user=owner, url="https://example.com/handbook")

    assert "the most the Pro plan allows (3)" in refused.value.message
    assert refused.value.field == "url"


def test_the_free_plan_refuses_a_document_over_10_mb_naming_the_plan(
    acme: Workspace, owner: User
) -> None:
    with schema_context(acme.schema_name):
        with pytest.raises(ApplicationError) as refused:
            _add(owner, data=b"x" * 10_000_001)

        assert refused.value.message == (
            "The document is 10.0 MB; the Free plan allows documents of at most 10.0 MB."
        )
        assert (refused.value.status, refused.value.field) == (413, "file")
        assert not Document.objects.exists()


def test_another_plan_takes_larger_documents(acme: Workspace, owner: User, on_plan: OnPlan) -> None:
    on_plan("enterprise")
    with schema_context(acme.schema_name):
        added = _add(owner, data=b"word " * 2_000_001)  # 10 MB and 5 bytes

    assert added.size_bytes == 10_000_005


def test_pro_takes_the_size_setting(
    acme: Workspace, owner: User, on_plan: OnPlan, settings: Any
) -> None:
    on_plan("pro")
    settings.RAG_MAX_FILE_BYTES = 100
    with schema_context(acme.schema_name):
        _add(owner, data=b"x" * 100)
        with pytest.raises(ApplicationError, match="the Pro plan allows documents of at most 100"):
            _add(owner, data=b"x" * 101)


def test_concurrent_adds_never_exceed_the_limit(
    acme: Workspace, owner: User, settings: Any
) -> None:
    # Each add commits on a connection of its own; acme is on pro (the setting) meanwhile.
    settings.RAG_MAX_DOCUMENTS = 5

    def on_plan(code: str) -> None:
        run_committed(lambda: Workspace.objects.filter(pk=acme.pk).update(plan=code))

    def add(i: int) -> str:
        def work() -> str:
            with schema_context(acme.schema_name):
                try:
                    document_add(user=owner, data=NOTES + bytes([65 + i]), filename=f"n{i}.txt")
                except ApplicationError as exc:
                    return exc.code
                return "added"

        return run_committed(work)

    def documents(delete: bool = False) -> int:
        with schema_context(acme.schema_name):
            found = Document.objects.all()
            return found.delete()[0] if delete else found.count()

    on_plan("pro")
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(add, range(12)))

        assert results.count("added") == 5
        assert results.count("document_limit_reached") == 7
        assert run_committed(documents) == 5
    finally:
        run_committed(lambda: documents(delete=True))
        on_plan("free")
