"""The load generator: N chat WebSockets at once, in its own process.

`python -m benchmarks.chat_streams.loadgen` reads one job (JSON) from standard input and writes
its result (JSON) to standard output. The job names the server, the cookie, one conversation
per socket and the token rate. The generator opens every socket (a few at a time: the server's
listen backlog is small), waits a moment, sends one message on each in one pass, and times every
frame's arrival until each socket has its `done` or the deadline passes; then it closes them all.

A minimal RFC 6455 client on asyncio protocols and the standard library only: it must be cheap
(it shares two cores with the server) and no WebSocket package is installed. Frames from the
server are not masked and are parsed incrementally; a token frame is recognised by its first
bytes and not JSON-decoded (Channels' `send_json` writes `{"type": "token", ...}`). Frames that
arrive in one read share one timestamp, as they did arrive together.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import resource
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

TOKEN_PREFIX = b'{"type": "token"'
CONNECT_BATCH = 50  # sockets whose handshakes run at once
HANDSHAKE_TIMEOUT = 60.0


def _frame(opcode: int, payload: bytes) -> bytes:
    """A client frame: FIN, the opcode, the mask bit and a masked payload."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big") if n else b""
    return head + mask + masked


@dataclass
class Stream:
    """One socket: when its frames arrived, and how its answer ended."""

    index: int
    conversation: int
    opened: float = 0.0
    sent: float = 0.0
    answer: float | None = None
    tokens: list[float] = field(default_factory=list)
    done: float | None = None
    status: str | None = None
    errors: list[str] = field(default_factory=list)
    closed_early: str | None = None


class Client(asyncio.Protocol):
    def __init__(self, stream: Stream, request: bytes, finished: asyncio.Event):
        self.stream = stream
        self.request = request
        self.finished = finished
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"closed during the handshake: {exc}"))
        if self.stream.done is None and self.stream.closed_early is None:
            self.stream.closed_early = f"connection lost: {exc}"
        self.finished.set()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            del self.buf[: end + 4]
            status = head.split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                self.handshake.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self.upgraded = True
            self.handshake.set_result(None)
        self._frames(now)

    def _frames(self, now: float) -> None:
        buf = self.buf
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n = b1 & 0x7F
            start = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n = int.from_bytes(buf[2:4], "big")
                start = 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n = int.from_bytes(buf[2:10], "big")
                start = 10
            if len(buf) < start + n:
                return
            payload = bytes(buf[start : start + n])
            del buf[: start + n]
            self._frame(b0 & 0x0F, payload, now)

    def _frame(self, opcode: int, payload: bytes, now: float) -> None:
        stream = self.stream
        if opcode == 0x1:
            if payload.startswith(TOKEN_PREFIX):
                stream.tokens.append(now)
                return
            event = json.loads(payload)
            kind = event.get("type")
            if kind == "answer":
                stream.answer = now
            elif kind == "done":
                stream.done = now
                stream.status = str(event.get("status"))
                if event.get("error"):
                    stream.errors.append(str(event["error"]))
                self.finished.set()
            elif kind == "error":
                stream.errors.append(str(event.get("message")))
        elif opcode == 0x8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            if stream.done is None:
                stream.closed_early = f"closed by the server (code {code})"
            self.finished.set()
            if self.transport is not None:
                self.transport.close()
        elif opcode == 0x9 and self.transport is not None:
            self.transport.write(_frame(0xA, payload))

    def send_text(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(_frame(0x1, text.encode()))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(0x8, struct.pack("!H", 1000)))
            self.transport.close()


def _request(job: dict[str, Any]) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    host = job["host"]
    lines = [
        f"GET {job['path']} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: http://{host}",
        f"Cookie: {job['cookie']}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _open(job: dict[str, Any], stream: Stream) -> tuple[Client, asyncio.Event]:
    loop = asyncio.get_running_loop()
    finished = asyncio.Event()
    _, client = await loop.create_connection(
        lambda: Client(stream, _request(job), finished), "127.0.0.1", job["port"]
    )
    await asyncio.wait_for(client.handshake, HANDSHAKE_TIMEOUT)
    stream.opened = time.monotonic()
    return client, finished


async def run(job: dict[str, Any]) -> dict[str, Any]:
    streams = [Stream(i, c) for i, c in enumerate(job["conversations"])]
    opened: list[tuple[Client, asyncio.Event]] = []
    failures: list[str] = []
    t_connect = time.monotonic()
    for start in range(0, len(streams), CONNECT_BATCH):
        batch = streams[start : start + CONNECT_BATCH]
        results = await asyncio.gather(*(_open(job, s) for s in batch), return_exceptions=True)
        for stream, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                stream.closed_early = f"connect failed: {result!r}"[:300]
                failures.append(stream.closed_early)
            else:
                opened.append(result)
    connected = time.monotonic()
    await asyncio.sleep(job["settle_s"])
    gc.collect()
    gc.disable()  # a collection in the middle would show as a gap of ours, not the server's
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    sent_at = time.monotonic()
    for n, (client, _) in enumerate(opened):
        frame = {
            "type": "send",
            "conversation": client.stream.conversation,
            "text": f"{job['text']} [{job['nonce']}-{job['step']}-{n}]",
        }
        client.stream.sent = time.monotonic()
        client.send_text(json.dumps(frame))
    waits = [asyncio.ensure_future(f.wait()) for _, f in opened]
    if waits:
        await asyncio.wait(waits, timeout=job["deadline_s"])
    ended = time.monotonic()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    gc.enable()
    for w in waits:
        w.cancel()
    for client, _ in opened:
        client.close()
    await asyncio.sleep(0.2)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return {
        "connect_started": t_connect,
        "connected": connected,
        "sent": sent_at,
        "ended": ended,
        "loadgen_cpu_s": cpu,
        "connect_failures": failures[:5],
        "streams": [
            {
                "conversation": s.conversation,
                "opened": s.opened,
                "sent": s.sent,
                "answer": s.answer,
                "tokens": s.tokens,
                "done": s.done,
                "status": s.status,
                "errors": s.errors[:3],
                "closed_early": s.closed_early,
            }
            for s in streams
        ],
    }


def main() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    job = json.loads(sys.stdin.read())
    result = asyncio.run(run(job))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
