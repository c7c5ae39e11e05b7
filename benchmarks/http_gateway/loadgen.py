"""The load generator: raw HTTP/1.1 over keep-alive asyncio connections, in its own process.

`python -m benchmarks.http_gateway.loadgen` reads one job (JSON) from standard input and
writes its result (JSON) to standard output. Three jobs:

- `pairs`: concurrency 1, one request to the upstream directly and one through the proxy per
  iteration, in a seeded random order, each side on its own warm connection. Latency (and,
  for a stream, the time to the first content token) per request.
- `ramp`: open loop. Requests leave at a fixed rate whatever the answers do, for a few seconds
  per step, on as many connections as are needed; a request's latency runs from the moment it
  was due, so a client that falls behind is counted against the server (no coordinated
  omission). Steps go up until p99 ≥ the limit, a request fails, or too many are outstanding;
  then the gap between the last pass and the first failure is bisected.
- `streams`: N streaming requests at once, each on its own connection, started evenly over
  `spread_s`; every byte's arrival is timed. A stream stalls when no byte came for `gap_s`.

Only the standard library: the client must be cheap (it shares two cores with the servers)
and its cost must not depend on the target. The response parser is incremental, chunked
transfer encoding included, and SSE events are JSON-decoded to find content tokens.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import math
import os
import random
import socket
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

HEAD, LENGTH, CHUNK_SIZE, CHUNK_DATA, TRAILER, UNTIL_CLOSE, DONE = range(7)
# In every prompt: no two requests of any run are alike, so our exact cache never answers.
NONCE = os.urandom(6).hex()
SEQUENCE = itertools.count()  # and a number: a retried ramp step repeats its texts
SENT: Counter[str] = Counter()  # requests per target name, warm-ups included


# --- one response ---------------------------------------------------------------------------


class Response:
    """Incremental HTTP/1.1 response parser; SSE events are decoded as they complete."""

    def __init__(self, *, sse: bool, start: float):
        self.sse = sse
        self.start = start
        self.state = HEAD
        self.buf = bytearray()
        self.status = 0
        self.keep_alive = True
        self.need = 0
        self.body = bytearray()
        self.events = bytearray()
        self.last = start  # arrival of the latest bytes (or the request's start)
        self.max_gap = 0.0
        self.first_byte: float | None = None
        self.first_token: float | None = None
        self.end: float | None = None
        self.text: list[str] = []
        self.tokens = 0
        self.done_marker = False
        self.usage = False
        self.stream_error: str | None = None

    @property
    def complete(self) -> bool:
        return self.state == DONE

    def feed(self, data: bytes, now: float) -> None:
        self.max_gap = max(self.max_gap, now - self.last)
        self.last = now
        if self.first_byte is None:
            self.first_byte = now
        self.buf += data
        self._parse(now)

    def eof(self, now: float) -> bool:
        """The connection closed: True when that ends the response cleanly."""
        if self.state == UNTIL_CLOSE:
            self._body(bytes(self.buf), now)
            self.buf.clear()
            self._finish(now)
            return True
        return self.state == DONE

    def _parse(self, now: float) -> None:
        buf = self.buf
        while True:
            if self.state == HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                self._head(bytes(buf[:end]).decode("latin-1"))
                del buf[: end + 4]
            elif self.state == LENGTH:
                if len(buf) < self.need:
                    return
                self._body(bytes(buf[: self.need]), now)
                del buf[: self.need]
                self._finish(now)
            elif self.state == CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(buf[:end]).split(b";", 1)[0], 16)
                del buf[: end + 2]
                self.need, self.state = size, (CHUNK_DATA if size else TRAILER)
            elif self.state == CHUNK_DATA:
                if len(buf) < self.need + 2:
                    return
                self._body(bytes(buf[: self.need]), now)
                del buf[: self.need + 2]
                self.state = CHUNK_SIZE
            elif self.state == TRAILER:
                if buf.startswith(b"\r\n"):
                    del buf[:2]
                    self._finish(now)
                    continue
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                del buf[: end + 4]
                self._finish(now)
            elif self.state == UNTIL_CLOSE:
                self._body(bytes(buf), now)
                buf.clear()
                return
            else:  # DONE: bytes after the response belong to nobody (no pipelining)
                return

    def _head(self, head: str) -> None:
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        self.status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        self.keep_alive = headers.get("connection") != "close"
        if "chunked" in headers.get("transfer-encoding", ""):
            self.state = CHUNK_SIZE
        elif "content-length" in headers:
            self.need = int(headers["content-length"])
            self.state = LENGTH
        elif self.status in (204, 304):
            self.state = DONE
        else:
            self.state = UNTIL_CLOSE
            self.keep_alive = False

    def _body(self, data: bytes, now: float) -> None:
        if not self.sse or self.status != 200:
            self.body += data
            return
        self.events += data.replace(b"\r\n", b"\n")
        while (end := self.events.find(b"\n\n")) >= 0:
            event = bytes(self.events[:end])
            del self.events[: end + 2]
            self._event(event, now)

    def _event(self, event: bytes, now: float) -> None:
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done_marker = True
                continue
            try:
                chunk = json.loads(payload)
            except ValueError:
                self.stream_error = f"bad SSE data {payload[:80]!r}"
                continue
            if not isinstance(chunk, dict):
                continue
            if "error" in chunk:
                self.stream_error = str(chunk["error"])[:200]
            if chunk.get("usage"):
                self.usage = True
            for choice in chunk.get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    self.tokens += 1
                    self.text.append(content)
                    if self.first_token is None:
                        self.first_token = now

    def _finish(self, now: float) -> None:
        self.state = DONE
        self.end = now
        if self.sse and self.status == 200:
            self._body(b"\n\n", now)  # a last event without its blank line

    def content(self) -> str:
        """The reply text: the streamed tokens, or choices[0].message.content."""
        if self.sse:
            return "".join(self.text)
        try:
            return str(json.loads(self.body)["choices"][0]["message"]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            return ""


# --- connections ----------------------------------------------------------------------------


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.exchanges = 0  # requests sent on this connection
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:
            return
        response.feed(data, time.perf_counter())
        if response.complete:
            self._resolve(response)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        response = self.response
        if response is None:
            return
        if response.eof(time.perf_counter()):
            self._resolve(response)
        elif self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection closed ({exc or 'eof'})"))

    def _resolve(self, response: Response) -> None:
        self.response = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(response)

    async def exchange(self, request: bytes, response: Response) -> Response:
        assert self.transport is not None
        self.response = response
        self.waiter = asyncio.get_running_loop().create_future()
        self.exchanges += 1
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.close()


@dataclass
class Target:
    name: str
    port: int
    path: str
    model: str
    key: str = ""
    host: str = "127.0.0.1"
    host_header: str = ""
    reply: str = ""  # the text every answer must carry
    tokens: int = 20

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Target:
        return cls(**spec)

    def request(self, text: str, *, stream: bool) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": text}],
            "max_tokens": 64,
        }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        data = json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host_header or self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"Accept: {'text/event-stream' if stream else 'application/json'}\r\n"
        )
        if self.key:
            head += f"Authorization: Bearer {self.key}\r\n"
        return head.encode() + b"\r\n" + data


class Pool:
    """Keep-alive connections to one target, opened on demand."""

    def __init__(self, target: Target):
        self.target = target
        self.idle: list[Connection] = []
        self.opened = 0

    async def acquire(self) -> Connection:
        while self.idle:
            conn = self.idle.pop()
            if conn.alive:
                return conn
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(Connection, self.target.host, self.target.port)
        self.opened += 1
        return conn

    def release(self, conn: Connection, response: Response | None) -> None:
        if response is not None and response.keep_alive and conn.alive:
            self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


@dataclass
class Outcome:
    ok: bool
    status: int
    latency_ms: float
    ttft_ms: float | None = None
    max_gap_ms: float = 0.0
    error: str | None = None


async def call(
    pool: Pool,
    text: str,
    *,
    stream: bool,
    timeout: float,
    due: float | None = None,
) -> Outcome:
    """One request. The clock starts at `due` (open loop) or once a connection is in hand."""
    target = pool.target
    request = target.request(f"{text} <{NONCE} {next(SEQUENCE)}>", stream=stream)
    SENT[target.name] += 1
    conn: Connection | None = None
    start = due if due is not None else time.perf_counter()
    response: Response | None = None
    try:
        conn = await asyncio.wait_for(pool.acquire(), timeout)
        if due is None:
            start = time.perf_counter()
        response = Response(sse=stream, start=start)
        try:
            response = await asyncio.wait_for(conn.exchange(request, response), timeout)
        except ConnectionError:
            if conn.exchanges == 1 or response.first_byte is not None:
                raise
            # The server closed an idle keep-alive connection as we reused it (uvicorn does
            # after 5 s): nothing was answered, so send again on a new one, as HTTP clients do.
            conn.close()
            conn = await asyncio.wait_for(pool.acquire(), timeout)
            response = Response(sse=stream, start=start)
            response = await asyncio.wait_for(conn.exchange(request, response), timeout)
    except Exception as exc:
        if conn is not None:
            conn.close()
        gap = (time.perf_counter() - (response.last if response else start)) * 1000
        return Outcome(
            ok=False,
            status=response.status if response else 0,
            latency_ms=(time.perf_counter() - start) * 1000,
            max_gap_ms=max(gap, response.max_gap * 1000 if response else 0.0),
            error=f"{type(exc).__name__}: {exc}"[:200],
        )
    pool.release(conn, response)
    assert response.end is not None
    latency = (response.end - start) * 1000
    ttft = (response.first_token - start) * 1000 if response.first_token is not None else None
    error = None
    if response.status != 200:
        error = f"HTTP {response.status}: {bytes(response.body[:200]).decode(errors='replace')}"
    elif response.stream_error:
        error = f"stream error: {response.stream_error}"
    elif stream and not response.done_marker:
        error = "stream ended without [DONE]"
    elif target.reply and response.content() != target.reply:
        error = f"unexpected reply {response.content()[:80]!r}"
    return Outcome(
        ok=error is None,
        status=response.status,
        latency_ms=latency,
        ttft_ms=ttft,
        max_gap_ms=response.max_gap * 1000,
        error=error,
    )


# --- statistics -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (as benchmarks.common.percentile)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def summary(self) -> dict[str, Any]:
        ok = [o for o in self.outcomes if o.ok]
        statuses = Counter(str(o.status) for o in self.outcomes if not o.ok)
        errors = Counter(o.error or "" for o in self.outcomes if not o.ok)
        non_2xx = sum(1 for o in self.outcomes if o.status and not 200 <= o.status < 300)
        return {
            "requests": len(self.outcomes),
            "ok": len(ok),
            "failed": len(self.outcomes) - len(ok),
            "non_2xx": non_2xx,
            "statuses": dict(statuses),
            "errors": dict(errors.most_common(3)),
        }


# --- jobs -----------------------------------------------------------------------------------


async def pairs(job: dict[str, Any]) -> dict[str, Any]:
    """Concurrency 1: direct and proxied requests interleaved, the order set by a seeded coin."""
    direct, proxy = Pool(Target.of(job["direct"])), Pool(Target.of(job["proxy"]))
    stream, timeout = bool(job["stream"]), float(job.get("timeout", 30))
    rng = random.Random(job.get("seed", 1))  # noqa: S311 - the call order, not a secret
    tallies = {"direct": Tally(), "proxy": Tally()}
    tag = job.get("tag", "pairs")
    try:
        for i in range(job["warmup"] + job["calls"]):
            measured = i >= job["warmup"]
            sides = [("direct", direct), ("proxy", proxy)]
            if rng.random() < 0.5:
                sides.reverse()
            for name, pool in sides:
                outcome = await call(
                    pool, f"Say twenty words. [{tag} {name} {i}]", stream=stream, timeout=timeout
                )
                if measured:
                    tallies[name].add(outcome)
    finally:
        direct.close()
        proxy.close()
    result: dict[str, Any] = {}
    for name, tally in tallies.items():
        # Aligned by iteration (None where the request failed) for the paired differences.
        result[name] = {
            **tally.summary(),
            "latency_ms": [o.latency_ms if o.ok else None for o in tally.outcomes],
            "ttft_ms": [o.ttft_ms if o.ok else None for o in tally.outcomes],
        }
    return result


async def _step(
    pool: Pool, rate: float, seconds: float, *, timeout: float, max_outstanding: int, tag: str
) -> dict[str, Any]:
    """Open loop at `rate` requests/s for `seconds`."""
    tally = Tally()
    count = max(1, round(rate * seconds))
    tasks: set[asyncio.Task[Outcome]] = set()
    outstanding_peak = 0
    aborted = False
    begin = time.perf_counter() + 0.01
    for i in range(count):
        due = begin + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        live = sum(1 for t in tasks if not t.done())
        outstanding_peak = max(outstanding_peak, live)
        if live >= max_outstanding:
            aborted = True
            break
        task = asyncio.create_task(
            call(
                pool,
                f"Say twenty words. [{tag} {rate:g} {i}]",
                stream=False,
                timeout=timeout,
                due=due,
            )
        )
        task.add_done_callback(lambda t: tally.add(t.result()))
        tasks.add(task)
    if tasks:
        await asyncio.wait(tasks)
    ended = max((begin + seconds, time.perf_counter()))
    ok = [o.latency_ms for o in tally.outcomes if o.ok]
    summary = tally.summary()
    p99 = percentile([o.latency_ms for o in tally.outcomes], 0.99)
    return {
        "rate": rate,
        **summary,
        "aborted": aborted,
        "outstanding_peak": outstanding_peak,
        "connections": pool.opened,
        "achieved_rps": len(ok) / (ended - begin),
        "p50_ms": percentile(ok, 0.50),
        "p90_ms": percentile(ok, 0.90),
        "p99_ms": p99,
        "max_ms": max(ok) if ok else math.nan,
    }


async def ramp(job: dict[str, Any]) -> dict[str, Any]:
    """Offered rates in steps until a step fails, then bisect (geometrically) between the last
    pass and the first failure."""
    pool = Pool(Target.of(job["target"]))
    limit = float(job["p99_limit_ms"])
    seconds = float(job["step_seconds"])
    timeout = float(job.get("timeout", 10))
    max_outstanding = int(job.get("max_outstanding", 1000))
    steps: list[dict[str, Any]] = []

    def passed(step: dict[str, Any]) -> bool:
        return (
            step["failed"] == 0
            and not step["aborted"]
            and step["p99_ms"] < limit
            and step["achieved_rps"] >= 0.9 * step["rate"]
        )

    async def run(rate: float, tag: str) -> bool:
        """One step; a failed step is run once more and the better attempt kept. The cores
        are shared, and a neighbour's burst of a few hundred ms decides a p99 of a few
        hundred samples on its own."""
        attempts = []
        for attempt in (1, 2):
            step = await _step(
                pool, rate, seconds, timeout=timeout, max_outstanding=max_outstanding, tag=tag
            )
            step["passed"] = passed(step)
            step["attempt"] = attempt
            attempts.append(step)
            await asyncio.sleep(float(job.get("pause_s", 0.5)))
            if step["passed"] or attempt == int(job.get("attempts", 2)):
                break
        best = min(attempts, key=lambda s: (not s["passed"], s["failed"], s["p99_ms"]))
        best["attempts_p99_ms"] = [a["p99_ms"] for a in attempts]
        steps.append(best)
        return bool(best["passed"])

    try:
        rates = [float(r) for r in job["rates"]]
        await _step(
            pool,
            rates[0],
            float(job.get("warmup_s", 1.0)),
            timeout=timeout,
            max_outstanding=max_outstanding,
            tag="warm-up",
        )
        best: float | None = None
        worst: float | None = None
        for rate in rates:
            if await run(rate, "ramp"):
                best = rate
            else:
                worst = rate
                break
        if best is not None and worst is not None:
            for _ in range(int(job.get("refine", 2))):
                middle = round(math.sqrt(best * worst))
                if middle <= best or middle >= worst:
                    break
                if await run(middle, "refine"):
                    best = middle
                else:
                    worst = middle
    finally:
        pool.close()
    return {"steps": steps, "max_passing_rate": best, "first_failing_rate": worst}


async def _stream_wave(target: Target, n: int, *, spread: float, timeout: float) -> dict[str, Any]:
    """N streams at once, each on its own connection, started evenly over `spread` seconds."""
    live = 0
    peak = 0

    async def one(i: int, due: float) -> Outcome:
        nonlocal live, peak
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pool = Pool(target)
        live += 1
        peak = max(peak, live)
        try:
            return await call(
                pool, f"Stream forty words. [wave {n} {i}]", stream=True, timeout=timeout
            )
        finally:
            live -= 1
            pool.close()

    begin = time.perf_counter() + 0.05
    outcomes = await asyncio.gather(*(one(i, begin + spread * i / n) for i in range(n)))
    tally = Tally(list(outcomes))
    gaps = [o.max_gap_ms for o in outcomes]
    ttfts = [o.ttft_ms for o in outcomes if o.ttft_ms is not None]
    return {
        "streams": n,
        **tally.summary(),
        "peak_open": peak,
        "seconds": time.perf_counter() - begin,
        "max_gap_ms": max(gaps),
        "p99_gap_ms": percentile(gaps, 0.99),
        "ttft_p50_ms": percentile(ttfts, 0.5),
        "ttft_p99_ms": percentile(ttfts, 0.99),
        "duration_p50_ms": percentile([o.latency_ms for o in outcomes if o.ok], 0.5),
        "duration_max_ms": max(o.latency_ms for o in outcomes),
    }


async def streams(job: dict[str, Any]) -> dict[str, Any]:
    """Waves of N concurrent slow streams, N going up until a stream stalls or fails."""
    target = Target.of(job["target"])
    gap_limit = float(job["gap_limit_ms"])
    waves = []
    best = None
    # Unmeasured: the first streams of a process pay for lazy imports and new pools.
    await _stream_wave(target, 2, spread=0.0, timeout=float(job.get("timeout", 60)))
    for n in job["counts"]:
        wave = await _stream_wave(
            target, int(n), spread=float(job["spread_s"]), timeout=float(job.get("timeout", 60))
        )
        wave["passed"] = wave["failed"] == 0 and wave["max_gap_ms"] <= gap_limit
        waves.append(wave)
        if not wave["passed"]:
            break
        best = int(n)
        await asyncio.sleep(float(job.get("pause_s", 1.0)))
    return {"waves": waves, "max_streams_passed": best}


JOBS = {"pairs": pairs, "ramp": ramp, "streams": streams}


def main() -> int:
    job = json.loads(sys.stdin.read())
    gc.collect()
    gc.freeze()  # what is alive now is never collected: shorter GC pauses in the client
    result = asyncio.run(JOBS[job["job"]](job))
    result["sent"] = dict(SENT)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
