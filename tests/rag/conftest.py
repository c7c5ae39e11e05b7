"""RAG test setup: put acme on another billing plan for one test."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apps.workspaces.models import Workspace

OnPlan = Callable[[str], Workspace]


@pytest.fixture
def on_plan(acme: Workspace) -> OnPlan:
    """`on_plan("pro")` moves acme to that plan for this test (the test's transaction undoes
    it) and returns acme as it now is. Pro has no document limits of its own: it takes
    RAG_MAX_DOCUMENTS / RAG_MAX_FILE_BYTES, so a test can set them."""

    def put(code: str) -> Workspace:
        Workspace.objects.filter(pk=acme.pk).update(plan=code)
        acme.refresh_from_db()
        return acme

    return put
