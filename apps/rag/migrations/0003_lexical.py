"""The lexical (BM25) index: postings in rag_term, corpus statistics in rag_lexical_stats.

The postings' foreign key cascades in the database (Django sees DO_NOTHING, so deleting chunks
stays a fast DELETE). A statement trigger with transition tables keeps N (chunks with
postings) and their total length in the one stats row: all postings of a chunk are written by
one INSERT and removed by one cascaded DELETE, so counting distinct chunk ids per statement is
exact. The function names the trigger's own schema, never the search path's."""

import django.db.models.deletion
from django.db import migrations, models

STATS_FUNCTION = """
CREATE OR REPLACE FUNCTION rag_term_stats() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sign integer := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
    chunks bigint;
    tokens bigint;
BEGIN
    -- dl is the same on every posting of a chunk: one per chunk counts its length once
    SELECT count(*), coalesce(sum(dl), 0) INTO chunks, tokens
    FROM (SELECT DISTINCT chunk_id, dl FROM changed) AS per_chunk;
    IF chunks > 0 THEN
        EXECUTE format(
            'UPDATE %I.rag_lexicalstats SET chunks = chunks + $1, tokens = tokens + $2 WHERE id = 1',
            TG_TABLE_SCHEMA
        ) USING sign * chunks, sign * tokens;
    END IF;
    RETURN NULL;
END $$
"""


class Migration(migrations.Migration):
    dependencies = [
        ("rag", "0002_chunk_hnsw"),
    ]

    operations = [
        migrations.CreateModel(
            name="LexicalStats",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False),
                ),
                ("chunks", models.BigIntegerField(default=0)),
                ("tokens", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="Term",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "term",
                        "chunk",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("term", models.TextField()),
                ("tf", models.PositiveIntegerField()),
                ("dl", models.PositiveIntegerField()),
                (
                    "chunk",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="rag.chunk",
                    ),
                ),
            ],
        ),
        migrations.RunSQL(
            "INSERT INTO rag_lexicalstats (id, chunks, tokens) VALUES (1, 0, 0)",
            migrations.RunSQL.noop,
        ),
        migrations.RunSQL(
            "ALTER TABLE rag_term ADD CONSTRAINT rag_term_chunk_fk FOREIGN KEY (chunk_id)"
            " REFERENCES rag_chunk (id) ON DELETE CASCADE",
            "ALTER TABLE rag_term DROP CONSTRAINT IF EXISTS rag_term_chunk_fk",
        ),
        migrations.RunSQL(STATS_FUNCTION, "DROP FUNCTION IF EXISTS rag_term_stats() CASCADE"),
        migrations.RunSQL(
            "CREATE TRIGGER rag_term_stats_insert AFTER INSERT ON rag_term"
            " REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION rag_term_stats();"
            "CREATE TRIGGER rag_term_stats_delete AFTER DELETE ON rag_term"
            " REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION rag_term_stats()",
            "DROP TRIGGER IF EXISTS rag_term_stats_insert ON rag_term;"
            "DROP TRIGGER IF EXISTS rag_term_stats_delete ON rag_term",
        ),
    ]
