"""Celery app. tenant-schemas-celery stamps each task with the sender's schema and the worker
enters it before running the task, so tasks see the same workspace as the code that sent them."""

from __future__ import annotations

import os
from typing import Any

from celery.signals import beat_init, worker_init
from django_structlog.celery.steps import DjangoStructLogInitStep
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aisaas.settings.local")

app = CeleryApp("aisaas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# DJANGO_STRUCTLOG_CELERY_ENABLED only covers the sending side; this step makes the worker log
# each task's start and outcome with its id (and the sender's request id).
app.steps["worker"].add(DjangoStructLogInitStep)


@worker_init.connect
@beat_init.connect
def _ensure_services(**_: Any) -> None:
    from aisaas.bootstrap import ensure_services

    ensure_services()
