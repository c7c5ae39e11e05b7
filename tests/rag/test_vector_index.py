"""Each workspace schema has its own HNSW index per embedding size; a nearest-chunk query that
filters on `dims` and casts like the index uses it (no scan of every chunk, no other schema)."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from apps.workspaces.models import Workspace

pytestmark = pytest.mark.django_db

QUERY = (
    "SELECT id FROM rag_chunk WHERE dims = 384 "
    "ORDER BY vector::vector(384) <=> %s::vector(384) LIMIT 5"
)


@pytest.mark.parametrize("dims", [384, 1536])
def test_a_partial_hnsw_index_exists_per_size_in_each_schema(
    acme: Workspace, globex: Workspace, dims: int
) -> None:
    for workspace in (acme, globex):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
                [workspace.schema_name, f"rag_chunk_hnsw_{dims}"],
            )
            (definition,) = cursor.fetchone() or ("",)
        assert "USING hnsw" in definition
        assert f"vector({dims})" in definition
        assert f"WHERE (dims = {dims})" in definition


def test_a_nearest_chunk_query_uses_the_index(acme: Workspace) -> None:
    query_vector = "[" + ",".join(["0.05"] * 384) + "]"
    with schema_context(acme.schema_name), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + QUERY, [query_vector])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "rag_chunk_hnsw_384" in plan
