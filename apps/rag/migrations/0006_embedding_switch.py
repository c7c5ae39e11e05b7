"""Switching a workspace's embedding model in the background (apps/rag/reembed.py): the
chunks' next vector beside the searched one, and the schema's embedding index row (the route
that made the searched vectors, the one switched to, progress). No backfill: the row is
recorded when a document is next embedded or a switch starts."""

import pgvector.django
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rag", "0005_lexical_impact"),
    ]

    operations = [
        migrations.AddField(
            model_name="chunk",
            name="next_model",
            field=models.CharField(blank=True, db_default="", max_length=100),
        ),
        migrations.AddField(
            model_name="chunk",
            name="next_dims",
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="chunk",
            name="next_vector",
            field=pgvector.django.VectorField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="EmbeddingIndex",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False),
                ),
                ("provider", models.CharField(blank=True, max_length=50)),
                ("model", models.CharField(blank=True, max_length=100)),
                ("target_provider", models.CharField(blank=True, max_length=50)),
                ("target_model", models.CharField(blank=True, max_length=100)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("idle", "Idle"),
                            ("switching", "Switching"),
                            ("failed", "Failed"),
                        ],
                        default="idle",
                        max_length=10,
                    ),
                ),
                ("done", models.PositiveIntegerField(default=0)),
                ("total", models.PositiveIntegerField(default=0)),
                ("error", models.TextField(blank=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
    ]
