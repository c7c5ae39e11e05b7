"""Bad input to the /v1 API: every case is a 4xx JSON error in OpenAI's shape that names the
problem, and nothing reaches the upstream."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest

from tests.fakes import FakeOpenAIServer

from .conftest import Key, MakeKey

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def key(make_key: MakeKey) -> Key:
    return make_key()


def post(http: httpx.Client, key: Key, path: str, **options: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key.secret}", **options.pop("headers", {})}
    return http.post(path, headers=headers, **options)


@pytest.mark.parametrize(
    ("body", "status", "code", "param", "says"),
    [
        ({"model": "fast"}, 400, "missing_required_parameter", "messages", "messages"),
        ({"messages": MESSAGES}, 400, "missing_required_parameter", "model", "model"),
        ({"model": "fast", "messages": []}, 400, "invalid_value", "messages", "at least 1"),
        ({"model": "fast", "messages": "hi"}, 400, "invalid_value", "messages", "list"),
        (
            {"model": "fast", "messages": [{"role": "robot", "content": "x"}]},
            400,
            "invalid_value",
            "messages[0].role",
            "'user'",
        ),
        (
            {"model": "fast", "messages": MESSAGES, "temperature": "hot"},
            400,
            "invalid_value",
            "temperature",
            "number",
        ),
        (
            {"model": "fast", "messages": MESSAGES, "frobnicate": 1},
            400,
            "unknown_parameter",
            "frobnicate",
            "Unrecognized request argument",
        ),
        (
            {"model": "fast", "messages": MESSAGES, "n": 2},
            400,
            "unsupported_parameter",
            "n",
            "n must be 1",
        ),
        (
            {"model": "fast", "messages": MESSAGES, "max_tokens": 10**9},
            400,
            "invalid_request",
            "max_tokens",
            "between 1 and",
        ),
        (
            {"model": "fast", "messages": MESSAGES, "max_tokens": 0},
            400,
            "invalid_value",
            "max_tokens",
            "greater than or equal to 1",
        ),
        (
            {"model": "fast", "messages": MESSAGES, "logprobs": True},
            400,
            "unsupported_parameter",
            "logprobs",
            "not supported",
        ),
        (
            {
                "model": "fast",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/png;base64,AA=="},
                            },
                        ],
                    }
                ],
            },
            400,
            "unsupported_parameter",
            "messages[0].content[1]",
            "image_url content parts are not supported",
        ),
        (
            {"model": "fast", "messages": MESSAGES, "response_format": {"type": "json_schema"}},
            400,
            "missing_required_parameter",
            "response_format.json_schema.schema",
            "required",
        ),
        (
            {
                "model": "fast",
                "messages": MESSAGES,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "nonsense"}},
                },
            },
            400,
            "invalid_request",
            "response_format",
            "not a valid JSON Schema",
        ),
        (
            {"model": "fast", "messages": MESSAGES, "stream_options": {"include_usage": True}},
            400,
            "unsupported_parameter",
            "stream_options",
            "only allowed when stream",
        ),
        ({"model": "embed", "messages": MESSAGES}, 400, "invalid_request", "model", "embed alias"),
        (
            {"model": "nope", "messages": MESSAGES},
            404,
            "model_not_found",
            "model",
            "Unknown model alias",
        ),
    ],
)
def test_a_bad_chat_body_is_a_json_error_naming_the_problem(
    http: httpx.Client,
    key: Key,
    upstream: FakeOpenAIServer,
    body: dict[str, Any],
    status: int,
    code: str,
    param: str,
    says: str,
) -> None:
    before = len(upstream.requests)
    response = post(http, key, "/chat/completions", json=body)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param), error
    assert says in error["message"]
    assert len(upstream.requests) == before


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"{not json", "could not parse the JSON body"),
        (b"[1, 2]", "must be a JSON object"),
        (b"", "could not parse the JSON body"),
        (
            '{"model": "fast", "messages": [{"role": "user", "content": "\xff"}]}'.encode("latin1"),
            "could not parse",
        ),
        # Python's json refuses both, with errors that once answered 500
        (b'{"model": "fast", "max_tokens": ' + b"9" * 5000 + b"}", "could not parse"),
        (b'{"model": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "levels deep"),
    ],
    ids=["not-json", "array", "empty", "latin1", "huge-integer", "deep-nesting"],
)
def test_a_body_that_is_not_a_json_object_is_400(
    http: httpx.Client, key: Key, content: bytes, says: str
) -> None:
    response = post(http, key, "/chat/completions", content=content)
    assert response.status_code == 400
    assert says in response.json()["error"]["message"]


def test_an_oversized_body_is_413(http: httpx.Client, key: Key) -> None:
    huge = {"model": "fast", "messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]}
    response = post(http, key, "/chat/completions", json=huge)
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]["message"]


def test_a_long_input_over_the_token_limit_is_400(http: httpx.Client, key: Key) -> None:
    long = {"model": "fast", "messages": [{"role": "user", "content": "word " * 120_000}]}
    response = post(http, key, "/chat/completions", json=long)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"model": "embed"}, "input", "Missing required parameter"),
        ({"model": "embed", "input": [10**9]}, "input", "outside the cl100k_base vocabulary"),
        ({"model": "embed", "input": [[1, 2], []]}, "input", "must not be empty"),
        ({"model": "embed", "input": []}, "input", "must not be empty"),
        ({"model": "embed", "input": "x", "dimensions": 99999}, "dimensions", "between 1 and"),
        (
            {"model": "embed", "input": "x", "encoding_format": "hex"},
            "encoding_format",
            "Invalid value",
        ),
        ({"model": "fast", "input": "x"}, "model", "chat alias"),
    ],
)
def test_a_bad_embeddings_body_is_400(
    http: httpx.Client, key: Key, body: dict[str, Any], param: str, says: str
) -> None:
    response = post(http, key, "/embeddings", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert says in error["message"]


def test_unknown_paths_and_methods_answer_json(http: httpx.Client, key: Key) -> None:
    missing = http.get("/engines", headers={"authorization": f"Bearer {key.secret}"})
    wrong_method = http.get("/chat/completions")

    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_url"
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
