"""LLM gateway. Installed in TENANT_APPS (one schema per workspace).

The gateway: `core/` is plain Python; Django glue builds its config from the workspace. It has
no tables yet; the semantic cache will be its first, per workspace, so no cached answer can
cross tenants. Other apps import it through `apps.llm.services` (docs/architecture.md, "Layers
and ports").
"""

from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "apps.llm"
    verbose_name = "LLM gateway"
