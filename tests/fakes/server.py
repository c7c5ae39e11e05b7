"""The loopback HTTP server under both fake providers: threads, connections, faults, records.

A real socket (not a mocked transport) so the official SDKs run their whole HTTP stack, and so a
test can see what the client did to the connection: closed it early, timed out, read to the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from .script import Fault, Reply


@dataclass
class RecordedRequest:
    """One request as the server saw it, and what happened to its response."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    number: int = 0  # 1-based position in `server.requests`: deterministic ids
    fault: Fault | None = None
    tokens_sent: int = 0
    completed: bool = False  # the response ended cleanly
    client_disconnected: bool = False  # the client closed the connection mid-response
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))

    def wait_done(self, timeout: float = 2.0) -> bool:
        """Block until the server has finished with this request (sync tests)."""
        return self.done.wait(timeout)

    async def wait_done_async(self, timeout: float = 2.0) -> bool:
        """Same, without blocking the event loop (async tests)."""
        return await asyncio.to_thread(self.done.wait, timeout)


class Exchange:
    """One request/response on a connection, with the fault that applies to it."""

    def __init__(
        self,
        handler: BaseHTTPRequestHandler,
        record: RecordedRequest,
        stop: threading.Event,
        error_event: Callable[[Fault], tuple[str | None, str]],
    ):
        self._h = handler
        self.record = record
        self._stop = stop
        self._error_event = error_event
        self.fault = record.fault

    def client_gone(self) -> bool:
        """True once the peer closed: a readable socket that reads EOF mid-response."""
        sock = self._h.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def sleep(self, seconds: float) -> bool:
        """Wait, waking early if the client leaves or the server stops. False → stop answering."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(left, 0.01)):
                return False
            if self.client_gone():
                self.record.client_disconnected = True
                return False
        return True

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self._h.send_response(status)
        for name, value in {**(headers or {}), "content-type": "application/json"}.items():
            self._h.send_header(name, value)
        self._h.send_header("content-length", str(len(body)))
        self._h.end_headers()
        self._write(body)
        self.record.completed = True

    def start_stream(self, headers: dict[str, str] | None = None) -> None:
        self._h.send_response(200)
        for name, value in {**(headers or {}), "content-type": "text/event-stream"}.items():
            self._h.send_header(name, value)
        self._h.send_header("cache-control", "no-cache")
        self._h.send_header("transfer-encoding", "chunked")
        self._h.end_headers()

    def send_event(self, data: str, *, event: str | None = None, token: bool = False) -> bool:
        """Write one SSE event as one HTTP chunk. False → the stream must stop (gone or dropped).

        `token=True` marks a content chunk: those are counted, and drop_after / stream_error
        faults strike before the (k+1)th.
        """
        if token and (fault := self._due_fault()) is not None:
            self._fail(fault)
            return False
        if self.client_gone():
            self.record.client_disconnected = True
            return False
        frame = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
        if not self._chunk(frame.encode()):
            return False
        if token:
            self.record.tokens_sent += 1
        return True

    def _due_fault(self) -> Fault | None:
        """A mid-stream fault whose k tokens have been sent."""
        fault = self.fault
        if fault is None or fault.kind not in ("drop_after", "stream_error"):
            return None
        return fault if self.record.tokens_sent >= fault.after_tokens else None

    def _fail(self, fault: Fault) -> None:
        if fault.kind == "drop_after":
            self.abort()
            return
        event, data = self._error_event(fault)
        frame = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
        if self._chunk(frame.encode()):
            self.end_stream()

    def pace(self, seconds: float) -> bool:
        return seconds <= 0 or self.sleep(seconds)

    def end_stream(self) -> None:
        if self._chunk(b""):
            self.record.completed = True

    def abort(self) -> None:
        """Cut the connection with no clean end of the response."""
        self._h.close_connection = True
        with contextlib.suppress(OSError):
            self._h.connection.shutdown(socket.SHUT_RDWR)

    def _chunk(self, data: bytes) -> bool:
        return self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _write(self, data: bytes) -> bool:
        try:
            self._h.wfile.write(data)
        except OSError:
            self.record.client_disconnected = True
            self._h.close_connection = True
            return False
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections close by themselves
    # Small writes (SSE chunks, short replies) must leave at once, as a real server's do:
    # Nagle's algorithm would add ~40 ms per request on a reused connection.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        self.server.fake._dispatch(self, body=None)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.server.fake._dispatch(self, body=body)

    def setup(self) -> None:
        super().setup()
        self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        self.server.fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeServer


class FakeServer:
    """Base of the vendor fakes: a background thread serving 127.0.0.1 on a free port.

    Script it before a call: `server.fail_next(Fault.rate_limited(2))`, `server.reply_next(
    Reply(text="Hi", tool_calls=(...,)))`. Read `server.requests` after. It stops itself after
    `max_lifetime` seconds so a forgotten server never outlives the test session for long.
    """

    def __init__(
        self,
        *,
        token_delay: float = 0.0,
        api_key: str | None = None,
        max_lifetime: float = 120.0,
    ):
        self.token_delay = token_delay
        self.api_key = api_key
        self.max_lifetime = max_lifetime
        self.faults: deque[Fault] = deque()
        self.replies: deque[Reply] = deque()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._stop.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def base_url(self) -> str:
        """What to pass as the SDK's `base_url`."""
        return self.url

    # --- scripting -----------------------------------------------------------------------

    def fail_next(self, fault: Fault, *, times: int = 1) -> None:
        with self._lock:
            self.faults.extend([fault] * times)

    def reply_next(self, reply: Reply) -> None:
        with self._lock:
            self.replies.append(reply)

    @property
    def last_request(self) -> RecordedRequest:
        return self.requests[-1]

    # --- serving -------------------------------------------------------------------------

    def _dispatch(self, handler: BaseHTTPRequestHandler, *, body: Any) -> None:
        headers = {name.lower(): value for name, value in handler.headers.items()}
        path = handler.path.split("?", 1)[0]
        record = RecordedRequest(handler.command, path, headers, body)
        with self._lock:
            self.requests.append(record)
            record.number = len(self.requests)
            record.fault = self.faults.popleft() if self.faults else None
        ex = Exchange(handler, record, self._stop, self.error_event)
        try:
            self._serve(ex)
        finally:
            record.done.set()

    def _serve(self, ex: Exchange) -> None:
        fault = ex.fault
        if self.api_key is not None and self.api_key not in _credentials(ex.record.headers):
            self.send_error(ex, 401, None)
        elif fault is not None and fault.kind == "status":
            self.send_error(ex, fault.status, fault)
        elif fault is not None and fault.kind == "timeout" and not ex.sleep(fault.seconds):
            return
        else:
            self.handle(ex)

    def next_reply(self) -> Reply:
        with self._lock:
            return self.replies.popleft() if self.replies else Reply()

    def handle(self, ex: Exchange) -> None:
        """Route and answer one request; vendor subclasses implement it."""
        raise NotImplementedError

    def send_error(self, ex: Exchange, status: int, fault: Fault | None) -> None:
        """Answer with the vendor's error JSON; vendor subclasses implement it."""
        raise NotImplementedError

    def error_event(self, fault: Fault) -> tuple[str | None, str]:
        """The vendor's in-stream error as (SSE event name, data); vendor subclasses implement it."""
        raise NotImplementedError

    def before_body(self, ex: Exchange) -> bool:
        """Apply slow-first-token / drop faults to a non-streamed reply. False → nothing to send."""
        if ex.fault is not None and ex.fault.kind in ("drop_after", "stream_error"):
            ex.abort()
            return False
        if ex.fault is not None and ex.fault.kind == "slow_first_token":
            return ex.sleep(ex.fault.seconds)
        return True

    def before_first_event(self, ex: Exchange) -> bool:
        if ex.fault is not None and ex.fault.kind == "slow_first_token":
            return ex.sleep(ex.fault.seconds)
        return True


def _credentials(headers: dict[str, str]) -> set[str]:
    bearer = headers.get("authorization", "").removeprefix("Bearer ").strip()
    return {headers.get("x-api-key", ""), bearer} - {""}
