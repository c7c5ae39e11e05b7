"""Deeply nested JSON to the /v1 API is a 400 naming the problem, never a 500: the body is
capped before it is parsed (the gateway caps the schemas it checks too: tests/llm)."""

from __future__ import annotations

import json

import httpx2 as httpx
import pytest

from .conftest import Key, MakeKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(make_key: MakeKey) -> Key:
    return make_key()


def with_schema(levels: int) -> bytes:
    """A completion body whose response_format schema nests `levels` objects (written as text:
    json.dumps recurses too)."""
    body = {
        "model": "fast",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "deep", "schema": "SCHEMA"},
        },
    }
    schema = '{"type": "object", "properties": {"a": ' * levels + "{}" + "}}" * levels
    return json.dumps(body).replace('"SCHEMA"', schema).encode()


def completion(http: httpx.Client, key: Key, content: bytes) -> httpx.Response:
    headers = {"authorization": f"Bearer {key.secret}", "content-type": "application/json"}
    return http.post("/chat/completions", headers=headers, content=content)


@pytest.mark.parametrize("levels", [100, 50_000])
def test_a_deep_response_format_schema_is_400(http: httpx.Client, key: Key, levels: int) -> None:
    response = completion(http, key, with_schema(levels))

    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert (error["code"], "levels deep" in error["message"]) == ("invalid_json", True)


def test_a_body_nested_100000_deep_is_400(http: httpx.Client, key: Key) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000

    response = completion(http, key, b'{"model": "fast", "messages": ' + deep + b"}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_a_schema_of_ordinary_depth_still_answers(http: httpx.Client, key: Key) -> None:
    assert completion(http, key, with_schema(5)).status_code == 200
