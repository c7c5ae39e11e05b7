"""A misbehaving Redis on loopback, as real sockets: `RedisProxy` forwards to the test Redis and
drops the connection at a chosen command; `StalledRedis` accepts connections and never answers.

    with RedisProxy(settings.REDIS_URL) as proxy:
        proxy.drop(lambda args: args[0] == b"RPUSH", when="after", times=1)
        client = BatchingRedis.from_url(proxy.url)  # the first RPUSH runs, its reply never comes

Commands are parsed (hiredis) and forwarded one by one, so a drop lands exactly at its command
even when the client pipelines several in one write: `when="before"` forwards the commands
before it and not it; `when="after"` forwards it too (Redis runs it) and then drops the
connection before any reply reaches the client. `times=None` drops every connection that sends
a matching command (Redis keeps refusing); `times=1` only the first (a retry gets through).
`stall()` makes it a Redis that accepts and never answers, from then on.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

import hiredis

Match = Callable[[list[bytes]], bool]


def _listen() -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    return server


def _url_on(url: str, port: int) -> str:
    """`url` (its credentials and database kept) pointed at 127.0.0.1:`port`."""
    parts = urlsplit(url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit((parts.scheme, f"{auth}127.0.0.1:{port}", parts.path, "", ""))


class _Server:
    def __init__(self) -> None:
        self.server = _listen()
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone won't)
        self.server.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.sockets.append(client)
            self.serve(client)

    def serve(self, client: socket.socket) -> None:
        raise NotImplementedError


class StalledRedis(_Server):
    """Accepts connections, reads what is sent and never answers (a stalled or half-open Redis).
    `url` is `like` (its database kept) pointed at it."""

    def __init__(self, like: str = "redis://127.0.0.1/0") -> None:
        super().__init__()
        self.url = _url_on(like, self.port)

    def serve(self, client: socket.socket) -> None:
        threading.Thread(target=self._swallow, args=(client,), daemon=True).start()

    def _swallow(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while client.recv(65536):
                pass


class RedisProxy(_Server):
    """Forwards to the Redis of `upstream_url`, dropping connections where told (module doc)."""

    def __init__(self, upstream_url: str) -> None:
        super().__init__()
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.url = _url_on(upstream_url, self.port)
        self._lock = threading.Lock()
        self._match: Match | None = None
        self._when = "before"
        self._times: int | None = None
        self.drops = 0  # connections dropped so far
        self.stalled = threading.Event()

    def stall(self) -> None:
        """From now on forward nothing and answer nothing: Redis stalls for every client."""
        self.stalled.set()

    def drop(self, match: Match, *, when: str = "before", times: int | None = 1) -> None:
        assert when in ("before", "after")
        with self._lock:
            self._match, self._when, self._times = match, when, times

    def _armed(self, args: list[bytes]) -> str | None:
        with self._lock:
            if self._match is None or self._times == 0 or not self._match(args):
                return None
            if self._times is not None:
                self._times -= 1
            self.drops += 1
            return self._when

    def serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        self.sockets.append(upstream)
        muted = threading.Event()
        threading.Thread(target=self._up, args=(client, upstream, muted), daemon=True).start()
        threading.Thread(target=self._down, args=(upstream, client, muted), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket, muted: threading.Event) -> None:
        reader = hiredis.Reader()
        try:
            while data := client.recv(65536):
                reader.feed(data)
                while (command := reader.gets()) is not False:
                    if self.stalled.is_set():
                        continue
                    when = self._armed(command)
                    if when == "after":
                        muted.set()  # the reply must never reach the client
                        upstream.sendall(hiredis.pack_command(tuple(command)))
                        time.sleep(0.1)  # Redis runs it before it sees the connection go
                    if when is not None:
                        self._close(client, upstream)
                        return
                    upstream.sendall(hiredis.pack_command(tuple(command)))
        except OSError:
            pass
        self._close(client, upstream)

    def _down(self, upstream: socket.socket, client: socket.socket, muted: threading.Event) -> None:
        try:
            while data := upstream.recv(65536):
                if not muted.is_set():
                    client.sendall(data)
        except OSError:
            pass
        self._close(client, upstream)

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
