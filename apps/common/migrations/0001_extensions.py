"""Create the `vector` and `pg_trgm` extensions once, in the public schema.

See docs/architecture.md, "Tenancy".

`common` is a shared app, so this runs for the public schema only; tenant search paths include
public, so every workspace schema sees the types and operators.
"""

from django.db import migrations


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.RunSQL(
            f'CREATE EXTENSION IF NOT EXISTS "{name}" SCHEMA public',
            reverse_sql=migrations.RunSQL.noop,
        )
        for name in ("vector", "pg_trgm")
    ]
