"""Evals. Installed in SHARED_APPS (public schema).

Eval runs and their results belong to the platform (CI, prompt authors), not to a workspace;
eval candidates are sampled from llm_call_log / llm_trace, which live in public too. Candidates
carry `workspace_id`, and every query on them filters on it or is staff-only (admin).
"""

from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "apps.evals"
    verbose_name = "Evals"
