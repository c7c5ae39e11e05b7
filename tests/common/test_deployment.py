"""Deployment defaults: production refuses a published or weak SECRET_KEY, `check --deploy`
with production settings prints no warning, compose keeps Redis on disk and has no default
secret, and every page carries a Content-Security-Policy that allows no inline script."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import pytest
import yaml
from cryptography.fernet import Fernet
from django.conf import settings

from tests.conftest import host_client

pytestmark = pytest.mark.django_db


def _manage(*args: str, secret_key: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "aisaas.settings.production",
        "SECRET_KEY": secret_key,
        "DATABASE_URL": "postgres://aisaas:secret@127.0.0.1:1/aisaas",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "SITE_URL": "https://example.com",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_with_production_settings_prints_no_warning():
    result = _manage("check", "--deploy", secret_key=secrets.token_urlsafe(50))

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "key", ["change-me-in-production", "dev-insecure-change-me", "short-key", "a" * 60]
)
def test_production_refuses_to_start_with_a_known_or_weak_secret_key(key):
    result = _manage("check", secret_key=key)

    assert result.returncode != 0
    assert "SECRET_KEY is a published default or too weak" in result.stderr


def test_compose_has_no_default_secret_and_persists_redis():
    compose = yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())
    app = compose["x-app"]["environment"]
    redis = compose["services"]["redis"]

    assert app["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_every_page_has_a_csp_that_allows_no_inline_script(owner):
    client = host_client("acme.localhost", owner)
    for path in ("/", "/chat/", "/documents/", "/billing/", "/settings/"):
        response = client.get(path)
        assert response.status_code == 200, path
        policy = dict(
            part.strip().split(" ", 1)
            for part in response["Content-Security-Policy"].split(";")
            if part.strip()
        )
        assert "'unsafe-inline'" not in policy["script-src"], path
        assert "'unsafe-eval'" not in policy["script-src"], path
        assert (policy["object-src"], policy["frame-ancestors"]) == ("'none'", "'none'")
        scripts = re.findall(r"<script\b[^>]*>", response.content.decode())
        inline = [tag for tag in scripts if "src=" not in tag and "nonce=" not in tag]
        assert not inline, (path, inline)
        assert not re.search(r"\son[a-z]+=\"", response.content.decode()), path


def test_the_public_pages_and_api_docs_have_the_csp(public_client):
    for path in ("/", "/accounts/login/", "/api/docs/"):
        response = public_client.get(path)
        assert "script-src 'self'" in response["Content-Security-Policy"], path
        scripts = re.findall(r"<script\b[^>]*>", response.content.decode())
        assert all("src=" in tag for tag in scripts), (path, scripts)
