"""Start the embedded services this process's settings need (none when URLs are configured)."""

from __future__ import annotations


def ensure_services() -> None:
    from django.conf import settings

    from aisaas import devstack

    devstack.ensure_running(settings.EMBEDDED_SERVICES)
