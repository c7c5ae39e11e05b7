"""One partial HNSW index per embedding size on `vector::vector(<dims>)` (cosine): a search
filters on `dims` and casts the same way to use it. 384 is the offline MiniLM, 1536 OpenAI's
text-embedding-3-small; another size gets its index in a migration of its own."""

from django.db import migrations

SIZES = (384, 1536)


def _create(dims: int) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS rag_chunk_hnsw_{dims} ON rag_chunk "
        f"USING hnsw ((vector::vector({dims})) vector_cosine_ops) WHERE dims = {dims}"
    )


class Migration(migrations.Migration):
    dependencies = [("rag", "0001_initial")]

    operations = [
        migrations.RunSQL(_create(dims), f"DROP INDEX IF EXISTS rag_chunk_hnsw_{dims}")
        for dims in SIZES
    ]
