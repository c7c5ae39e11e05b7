"""Common. Installed in SHARED_APPS (public schema).

Shared building blocks: BaseModel, ApplicationError, the JSON API error handler,
health checks, and the migration that creates the `vector` and `pg_trgm` extensions once, in the
public schema (never from a tenant migration).
"""

from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "apps.common"
    verbose_name = "Common"
