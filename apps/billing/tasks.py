"""Billing's periodic work (beat schedule in settings): thin wrappers over services."""

from __future__ import annotations

from celery import shared_task
