"""/healthz: 200 when the database, Redis, pgvector and a Celery worker answer; 503 naming the
failing part otherwise. Always JSON, never a page, never a login redirect."""

from __future__ import annotations

import re
import socket
import time

import pytest

from aisaas.celery import app

pytestmark = pytest.mark.django_db

# Without a bound, kombu retries a refused broker connection for seconds; probes time out first.
UNREACHABLE_ANSWER_SECONDS = 4.0


def _closed_loopback_url() -> str:
    """A Redis URL on a loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_healthz_reports_every_part_when_all_answer(celery_worker, public_client):
    response = public_client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    report = response.json()
    assert re.fullmatch(r"\d+\.\d+\.\d+", report.pop("pgvector"))
    assert report == {"db": "ok", "redis": "ok", "celery": "ok"}


def test_healthz_answers_json_on_a_workspace_host_without_login(celery_worker, acme_client):
    response = acme_client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["db"] == "ok"


def test_healthz_names_redis_and_celery_when_redis_is_unreachable(
    settings, monkeypatch, public_client
):
    # given Redis gone for the cache/channels client and for the Celery broker alike
    unreachable = _closed_loopback_url()
    settings.REDIS_URL = unreachable
    monkeypatch.setitem(app.conf, "broker_url", unreachable)

    # when
    started = time.monotonic()
    response = public_client.get("/healthz")
    elapsed = time.monotonic() - started

    # then
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    report = response.json()
    assert report["failing"] == "redis,celery"
    assert report["redis"].startswith("error: ConnectionError")
    assert report["celery"].startswith("error: OperationalError")
    assert report["db"] == "ok"
    assert elapsed < UNREACHABLE_ANSWER_SECONDS


def test_healthz_names_celery_when_no_worker_answers(no_celery_worker, public_client):
    response = public_client.get("/healthz")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    report = response.json()
    assert report["failing"] == "celery"
    assert report["celery"] == "error: no worker answered"
    assert (report["db"], report["redis"]) == ("ok", "ok")
