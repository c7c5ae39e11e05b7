"""LLM gateway. Installed in TENANT_APPS (one schema per workspace).

The gateway: `core/` is plain Python; Django glue builds its config from the workspace. Its
tables live in each workspace's schema (model synonyms, the `/v1/responses` answers kept for
`previous_response_id`; the semantic cache next), so none of it can cross tenants. Other apps import it through `apps.llm.services` (docs/architecture.md, "Layers
and ports").
"""

from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "apps.llm"
    verbose_name = "LLM gateway"
