"""Traces: the store. Installed in SHARED_APPS (public schema).

llm_call_log and llm_trace (masked) + llm_trace_raw (short-lived), the call-record queue and its
flush, masking, rollups, retention, OTel export. Support and finance read them across
workspaces, so they live in public; every row carries `workspace_id` and every query filters on
it. The staff pages that read them are the support console (apps/console).

At ready() the store plugs its call sink into the gateway (docs/architecture.md, "Layers and
ports").
"""

from django.apps import AppConfig


class TracesConfig(AppConfig):
    name = "apps.traces"
    verbose_name = "Traces"

    def ready(self) -> None:
        from apps.llm.ports import ports

        from .services import RedisCallSink

        ports.plug(sink=RedisCallSink)
