"""The fake upstream: a small asyncio HTTP/1.1 server speaking OpenAI Chat Completions.

`python -m benchmarks.http_gateway.upstream` prints `{"port": P}` on one line once it listens,
then serves until its standard input closes (the parent exits or says stop).

Why not `tests.fakes.FakeOpenAIServer`: that one is a `ThreadingHTTPServer` (a thread per
connection, the GIL shared between them). It is right for the tests, which look at single
requests, but a few hundred streams or requests per second through a proxy is what is
measured here, and the upstream must not be the first thing to give out. This server is one
asyncio event loop on raw `asyncio.Protocol` connections: a non-streamed reply is one
`write()`, a streamed one is one `write()` per chunk (or one for all chunks when they are not
paced), and Nagle's algorithm is off on every connection.

What it answers:

- `POST /v1/chat/completions`: JSON or SSE (`stream: true`; a usage chunk when
  `stream_options.include_usage` is set, then `data: [DONE]`). The reply is always the same
  `tokens` words; the first byte leaves `delay_ms` after the request arrived, and a stream's
  content chunks are `interval_ms` apart.
- `GET /v1/models`, `GET /health`.
- `POST /_bench/config` `{"delay_ms": .., "interval_ms": .., "tokens": ..}`: the shape of the
  following replies. `GET /_bench/stats`: requests served, by kind. `POST /_bench/reset`: zero
  the counters.

Only the standard library, so it runs under any interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

CREATED = 1_700_000_000
MAX_HEAD = 65536


@dataclass
class Shape:
    delay_ms: float = 0.0  # before the first byte of the response
    interval_ms: float = 0.0  # between two content chunks of a stream
    tokens: int = 20  # words in every reply


def words(n: int) -> list[str]:
    """The reply, one word (with its leading space) per token: "Bench t1 t2 … t{n-1}"."""
    return ["Bench", *(f" t{i}" for i in range(1, n))]


class Upstream:
    """The state shared by every connection: the reply shape and the counters."""

    def __init__(self) -> None:
        self.shape = Shape()
        self.counts: Counter[str] = Counter()
        self.open_connections = 0
        self.peak_connections = 0
        self.active_streams = 0
        self.peak_streams = 0

    def stats(self) -> dict[str, Any]:
        return {
            **self.counts,
            "open_connections": self.open_connections,
            "peak_connections": self.peak_connections,
            "active_streams": self.active_streams,
            "peak_streams": self.peak_streams,
            "shape": asdict(self.shape),
        }


def _response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return _chunk(f"data: {data}\n\n".encode())


class Connection(asyncio.Protocol):
    """One client connection: requests are answered one at a time, in order."""

    def __init__(self, upstream: Upstream):
        self.up = upstream
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.closed = False

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.up.open_connections += 1
        self.up.peak_connections = max(self.up.peak_connections, self.up.open_connections)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.up.open_connections -= 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    # --- requests ------------------------------------------------------------------------

    def _next(self) -> None:
        """Parse and answer every complete request in the buffer (stop at a paced one)."""
        while not self.busy and not self.closed:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self._close()
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._write(_response("411 Length Required", b'{"error":"no chunked bodies"}'))
                self._close()
                return
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            method, path, *_ = head[0].split(" ")
            self._dispatch(method, path.split("?", 1)[0], body)

    def _dispatch(self, method: str, path: str, body: bytes) -> None:
        up = self.up
        if (method, path) == ("POST", "/v1/chat/completions"):
            try:
                request = json.loads(body)
            except ValueError:
                self._write(_response("400 Bad Request", b'{"error":"bad json"}'))
                return
            stream = bool(request.get("stream"))
            up.counts["stream" if stream else "json"] += 1
            up.counts[f"model:{request.get('model')}"] += 1
            shape = up.shape
            if shape.delay_ms <= 0 and (not stream or shape.interval_ms <= 0):
                self._write(self._reply(request, stream, shape))
            else:
                self.busy = True
                asyncio.get_running_loop().create_task(self._paced(request, stream, shape))
        elif (method, path) == ("GET", "/v1/models"):
            models = [
                {"id": "gpt-4.1-mini", "object": "model", "created": CREATED, "owned_by": "b"}
            ]
            self._write(
                _response("200 OK", json.dumps({"object": "list", "data": models}).encode())
            )
        elif (method, path) == ("GET", "/health"):
            self._write(_response("200 OK", b'{"ok":true}'))
        elif (method, path) == ("POST", "/_bench/config"):
            up.shape = Shape(**{**asdict(up.shape), **json.loads(body or b"{}")})
            self._write(_response("200 OK", json.dumps(asdict(up.shape)).encode()))
        elif (method, path) == ("GET", "/_bench/stats"):
            self._write(_response("200 OK", json.dumps(up.stats()).encode()))
        elif (method, path) == ("POST", "/_bench/reset"):
            up.counts.clear()
            up.peak_connections = up.open_connections
            up.peak_streams = up.active_streams
            self._write(_response("200 OK", b"{}"))
        else:
            self._write(_response("404 Not Found", b'{"error":"not found"}'))

    def _reply(self, request: dict[str, Any], stream: bool, shape: Shape) -> bytes:
        """The whole response at once (no pacing)."""
        rid = f"chatcmpl-b{self.up.counts['json'] + self.up.counts['stream']}"
        model = str(request.get("model", "gpt-4.1-mini"))
        if not stream:
            return _response("200 OK", _completion(rid, model, request, shape.tokens))
        return b"".join([_STREAM_HEAD, *_events(rid, model, request, shape.tokens), _chunk(b"")])

    async def _paced(self, request: dict[str, Any], stream: bool, shape: Shape) -> None:
        try:
            if shape.delay_ms > 0:
                await asyncio.sleep(shape.delay_ms / 1000)
            if self.closed:
                return
            if not stream or shape.interval_ms <= 0:
                self._write(self._reply(request, stream, shape))
                return
            rid = f"chatcmpl-b{self.up.counts['json'] + self.up.counts['stream']}"
            model = str(request.get("model", "gpt-4.1-mini"))
            events = _events(rid, model, request, shape.tokens)
            self.up.active_streams += 1
            self.up.peak_streams = max(self.up.peak_streams, self.up.active_streams)
            try:
                # role chunk + first token together, then one token per interval, then the rest
                self._write(_STREAM_HEAD + events[0] + events[1])
                for event in events[2 : 1 + shape.tokens]:
                    await asyncio.sleep(shape.interval_ms / 1000)
                    if self.closed:
                        self.up.counts["client_gone"] += 1
                        return
                    self._write(event)
                self._write(b"".join(events[1 + shape.tokens :]) + _chunk(b""))
            finally:
                self.up.active_streams -= 1
        finally:
            self.busy = False
            if not self.closed:
                self._next()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def _usage(request: dict[str, Any], tokens: int) -> dict[str, Any]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in request.get("messages") or [])
    return {"prompt_tokens": prompt, "completion_tokens": tokens, "total_tokens": prompt + tokens}


def _completion(rid: str, model: str, request: dict[str, Any], tokens: int) -> bytes:
    message = {"role": "assistant", "content": "".join(words(tokens)), "refusal": None}
    return json.dumps(
        {
            "id": rid,
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": _usage(request, tokens),
            "system_fingerprint": "fp_bench",
        },
        separators=(",", ":"),
    ).encode()


def _events(rid: str, model: str, request: dict[str, Any], tokens: int) -> list[bytes]:
    """role chunk, `tokens` content chunks, finish chunk, [usage chunk], [DONE]: one HTTP chunk
    each."""
    include_usage = bool((request.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload: dict[str, Any] = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            payload["usage"] = None
        return _event(payload)

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": word}) for word in words(tokens)]
    events.append(chunk({}, "stop"))
    if include_usage:
        usage = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": [],
            "usage": _usage(request, tokens),
        }
        events.append(_event(usage))
    events.append(_event("[DONE]"))
    return events


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    upstream = Upstream()
    server = await loop.create_server(
        lambda: Connection(upstream), host, port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(json.dumps({"port": bound}) + "\n")
    sys.stdout.flush()
    # Serve until stdin closes: the parent died or asked us to stop.
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="Fake OpenAI upstream for the HTTP benchmark.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
