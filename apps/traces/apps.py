"""Traces. Installed in SHARED_APPS (public schema).

llm_call_log and llm_trace, replay, dashboards, retention and feedback scores. Support and
finance read them across workspaces, so they live in public; every row carries `workspace_id`
and every query filters on it.
"""

from django.apps import AppConfig


class TracesConfig(AppConfig):
    name = "apps.traces"
    verbose_name = "Traces"
