"""What the fakes answer: scripted faults and replies, and the deterministic default reply."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

FaultKind = Literal["status", "timeout", "slow_first_token", "drop_after", "stream_error"]
Finish = Literal["stop", "length", "tool_calls"]

_TOKEN = re.compile(r"\s*\S+")


def tokens(text: str) -> list[str]:
    """Split text the way the fakes stream it: one word per chunk, with its leading space."""
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class Fault:
    """What goes wrong with the next request. Build with the class methods."""

    kind: FaultKind
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0
    after_tokens: int = 0
    message: str | None = None

    @classmethod
    def http(
        cls, status: int, *, retry_after: float | None = None, message: str | None = None
    ) -> Fault:
        """Answer with this HTTP status and the vendor's error JSON."""
        return cls("status", status=status, retry_after=retry_after, message=message)

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1) -> Fault:
        return cls.http(429, retry_after=retry_after)

    @classmethod
    def server_error(cls) -> Fault:
        return cls.http(500)

    @classmethod
    def overloaded(cls) -> Fault:
        return cls.http(529)

    @classmethod
    def unauthorized(cls) -> Fault:
        return cls.http(401)

    @classmethod
    def timeout(cls, hold: float = 2.0) -> Fault:
        """Hold the response (no headers) for `hold` seconds: longer than the client waits."""
        return cls("timeout", seconds=hold)

    @classmethod
    def slow_first_token(cls, delay: float) -> Fault:
        """Send headers at once, then wait `delay` seconds before the first event."""
        return cls("slow_first_token", seconds=delay)

    @classmethod
    def drop_after(cls, k: int) -> Fault:
        """Abort the connection after k content chunks, without the end of the chunked body."""
        return cls("drop_after", after_tokens=k)

    @classmethod
    def stream_error(cls, k: int, status: int = 529) -> Fault:
        """After k content chunks, send the vendor's in-stream error event (its error type for
        `status`, e.g. Anthropic's overloaded_error) and end the body cleanly."""
        return cls("stream_error", status=status, after_tokens=k)


@dataclass(frozen=True)
class ToolCallScript:
    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    """A scripted answer. `text=None` keeps the default echo; usage fields override the count."""

    text: str | None = None
    tool_calls: tuple[ToolCallScript, ...] = ()
    thinking: str = ""
    finish: Finish | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass
class Planned:
    """The normalised answer a vendor module renders into its wire format."""

    text: str
    thinking: str
    tool_calls: list[tuple[str, str, str]]  # (id, name, JSON arguments)
    finish: Finish
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int


def plan(
    reply: Reply,
    *,
    prompt: str,
    input_words: int,
    max_tokens: int | None,
    json_schema: Any = None,
    id_prefix: str = "call_",
) -> Planned:
    """Turn a scripted (or default) reply into text, tool calls and usage, deterministically."""
    if reply.text is not None:
        text = reply.text
    elif json_schema is not None:
        text = json.dumps(sample_json(json_schema, prompt))
    else:
        text = f"Echo: {prompt}"
    parts = tokens(text)
    finish: Finish = reply.finish or ("tool_calls" if reply.tool_calls else "stop")
    if max_tokens is not None and len(parts) > max_tokens:
        parts, finish = parts[:max_tokens], "length"
    calls = [
        (call.id or f"{id_prefix}fake{i:02d}", call.name, json.dumps(call.arguments))
        for i, call in enumerate(reply.tool_calls)
    ]
    produced = (
        len(parts) + len(tokens(reply.thinking)) + sum(len(arg_chunks(a)) for _, _, a in calls)
    )
    return Planned(
        text="".join(parts),
        thinking=reply.thinking,
        tool_calls=calls,
        finish=finish,
        input_tokens=reply.input_tokens if reply.input_tokens is not None else input_words,
        output_tokens=reply.output_tokens if reply.output_tokens is not None else produced,
        cache_read_tokens=reply.cache_read_tokens,
        cache_write_tokens=reply.cache_write_tokens,
    )


def arg_chunks(arguments: str, size: int = 8) -> list[str]:
    """Tool-call JSON streamed in fixed-size pieces, as vendors stream partial JSON."""
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def sample_json(schema: Any, prompt: str) -> Any:
    """A small value that satisfies common JSON Schemas, so JSON-mode calls get valid JSON."""
    if not isinstance(schema, dict):
        return {"echo": prompt}
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return sample_json(schema[key][0], prompt)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: sample_json(sub, prompt) for name, sub in props.items()}
    if kind == "array":
        return [sample_json(schema.get("items", {"type": "string"}), prompt)]
    return {"string": prompt, "integer": 0, "number": 0.0, "boolean": True}.get(kind)


def embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for `text` (equal texts → equal vectors)."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    raw = raw[:dimensions]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]
