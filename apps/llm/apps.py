"""LLM gateway. Installed in TENANT_APPS (one schema per workspace).

The gateway: `core/` is plain Python; Django glue builds its config from the workspace.
Its only tables are per-workspace (the semantic cache), so no cached answer can cross tenants.
"""

from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "apps.llm"
    verbose_name = "LLM gateway"
