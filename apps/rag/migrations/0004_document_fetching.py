"""The `fetching` status: a URL document's page is being downloaded by the indexing task."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rag", "0003_lexical"),
    ]

    operations = [
        migrations.AlterField(
            model_name="document",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("fetching", "Fetching"),
                    ("parsing", "Parsing"),
                    ("chunking", "Chunking"),
                    ("embedding", "Embedding"),
                    ("ready", "Ready"),
                    ("paused", "Paused"),
                    ("failed", "Failed"),
                ],
                default="queued",
                max_length=10,
            ),
        ),
    ]
