"""BM25 at 100k chunks: a per-term document frequency table and an impact-ordered covering index.

- rag_termdf (term → df), kept by the same statement trigger as rag_lexicalstats, so a search
  reads df instead of counting every posting of its terms (the window that needed a sort).
  The trigger updates the stats row first: every writer of postings queues on that one row
  until it commits, so two transactions never lock df rows in opposite orders (no deadlock).
- rag_term_impact: (term, impact DESC) INCLUDE (chunk_id, tf, dl). Impact is the BM25 term
  weight tf / (tf + k1 · (1 - b + b · dl / AVGDL)) with k1 1.2, b 0.6 and AVGDL fixed at 100
  (the schema's real avgdl drifts; apps/rag/lexical.py bounds what that drift can change). One
  index serves both reads: all postings of a term, index-only (the exact scan), and a term's
  best postings first (the bounded scan). The expression must stay identical to
  lexical.IMPACT_SQL, or the planner cannot use the index for the ordered read.
- rag_document_not_ready: a search leaves out the chunks of documents not ready (a handful)
  by an anti-join, which this partial index finds without scanning every document.

Applies to every workspace schema (a tenant app's migration); the backfill counts what is
already indexed."""

from django.db import migrations, models

IMPACT = (
    "(tf::float8 / (tf::float8 + 1.2::float8 * (0.4::float8 + 0.6::float8 * dl::float8"
    " / 100.0::float8)))"
)

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
        -- first: the stats row serialises writers before any df row is locked
        EXECUTE format(
            'UPDATE %I.rag_lexicalstats SET chunks = chunks + $1, tokens = tokens + $2 WHERE id = 1',
            TG_TABLE_SCHEMA
        ) USING sign * chunks, sign * tokens;
        EXECUTE format(
            'INSERT INTO %I.rag_termdf AS d (term, df)'
            ' SELECT term, $1 * count(*) FROM changed GROUP BY term ORDER BY term'
            ' ON CONFLICT (term) DO UPDATE SET df = d.df + excluded.df',
            TG_TABLE_SCHEMA
        ) USING sign;
    END IF;
    RETURN NULL;
END $$
"""

OLD_STATS_FUNCTION = """
CREATE OR REPLACE FUNCTION rag_term_stats() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sign integer := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
    chunks bigint;
    tokens bigint;
BEGIN
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
        ("rag", "0004_document_fetching"),
    ]

    operations = [
        migrations.CreateModel(
            name="TermDF",
            fields=[
                ("term", models.TextField(primary_key=True, serialize=False)),
                ("df", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunSQL(
            "INSERT INTO rag_termdf (term, df) SELECT term, count(*) FROM rag_term GROUP BY term",
            migrations.RunSQL.noop,
        ),
        migrations.RunSQL(STATS_FUNCTION, OLD_STATS_FUNCTION),
        migrations.RunSQL(
            f"CREATE INDEX IF NOT EXISTS rag_term_impact ON rag_term (term, {IMPACT} DESC)"
            " INCLUDE (chunk_id, tf, dl)",
            "DROP INDEX IF EXISTS rag_term_impact",
        ),
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS rag_document_not_ready ON rag_document (id)"
            " WHERE status <> 'ready'",
            "DROP INDEX IF EXISTS rag_document_not_ready",
        ),
    ]
