"""The gateway's Redis client: one multiplexed connection, commands auto-pipelined per loop turn.

The gateway's stages talk to Redis through small, separate stores (budget, cache, call records),
and stages that don't depend on each other run together (`gateway.Together`). With redis-py each
command is its own round trip on a pooled connection, and on this 2-core VM redis-py's layers
(pool checkout, retries, hooks, stream reader) cost ~0.4 ms per command in process: a gateway call
spent 1.8 ms of its 2 ms in them. This client keeps redis-py's API (every command method, Lua
`Script` objects with their NOSCRIPT → SCRIPT LOAD path, response callbacks) but sends commands
over one connection per event loop, the way ioredis' auto-pipelining and StackExchange.Redis'
multiplexer do (redis-py has neither: redis/redis-py#3767):

- every command issued during one turn of the event loop goes out in a single write, packed by
  hiredis; replies come back in order and are parsed by hiredis;
- a failed command fails alone; a lost connection fails the commands waiting on it, and the next
  command reconnects;
- a caller that is cancelled after its command was queued leaves the command to run; its reply
  is read and dropped, so the replies that follow stay matched.

TCP and unix-socket URLs (with user, password and db) take this path; other connection kinds
(TLS, for one) fall back to redis-py's own, unbatched. `pipeline()` keeps redis-py's pooled
pipelines. One client belongs to one event loop, like every redis.asyncio client.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Self, cast

import hiredis
import redis.asyncio as aioredis
from redis._parsers.base import BaseParser
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# redis-py leaves this one untyped: the error class its parsers build for an error reply.
_parse_error = cast(Callable[[str], Exception], BaseParser.parse_error)


class _Wire(asyncio.Protocol):
    """One connection: queued writes, and the futures waiting for replies, in order."""

    def __init__(self, encoding: str | None):
        self.reader = hiredis.Reader(encoding=encoding) if encoding else hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.outgoing: list[bytes] = []
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future = self.waiting.popleft()
            if future.done():  # its caller was cancelled
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(_parse_error(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(
            RedisConnectionError(f"Connection to Redis lost: {exc or 'closed by the server'}")
        )

    def fail(self, error: Exception) -> None:
        self.lost = True
        self.outgoing.clear()
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def flush(self) -> None:
        if self.outgoing and not self.lost and self.transport is not None:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()


class BatchingRedis(aioredis.Redis):
    """redis.asyncio.Redis over one auto-pipelined connection (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pool = self.connection_pool
        self._settings = dict(pool.connection_kwargs)
        self._multiplexed = pool.connection_class in (Connection, UnixDomainSocketConnection)
        self._wire: _Wire | None = None
        self._connecting: asyncio.Task[_Wire] | None = None
        self.round_trips = 0  # writes sent (tests and the benchmark read it)

    @classmethod
    def from_url(
        cls,
        url: str,
        single_connection_client: bool = False,
        auto_close_connection_pool: bool | None = None,
        **kwargs: Any,
    ) -> Self:
        client = super().from_url(
            url,
            single_connection_client=single_connection_client,
            auto_close_connection_pool=auto_close_connection_pool,
            **kwargs,
        )
        return cast(Self, client)

    @property
    def multiplexed(self) -> bool:
        """Whether commands take the batched connection (False: redis-py's own, e.g. TLS)."""
        return self._multiplexed

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if not self._multiplexed:
            return await cast(Callable[..., Awaitable[Any]], super().execute_command)(
                *args, **options
            )
        wire = self._wire
        if wire is None or wire.lost:
            wire = await self._connect()
        future = self._send(wire, args)
        timeout = self._settings.get("socket_timeout")
        if timeout is None:
            reply = await future
        else:
            try:
                reply = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                # Replies may still come, out of step with the queue: start over.
                wire.fail(RedisTimeoutError("Timeout reading from Redis"))
                raise RedisTimeoutError(
                    f"Redis did not answer {args[0]} within {timeout} s"
                ) from None
        return self._parse(args[0], reply, options)

    def _send(self, wire: _Wire, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not wire.outgoing:
            loop.call_soon(self._flush, wire)  # after the tasks already scheduled this turn
        name = args[0]
        if isinstance(name, str) and " " in name:  # "SCRIPT LOAD" is two words on the wire
            args = (*name.split(), *args[1:])
        wire.outgoing.append(hiredis.pack_command(args))
        wire.waiting.append(future)
        return future

    def _flush(self, wire: _Wire) -> None:
        if wire.outgoing:
            self.round_trips += 1
        wire.flush()

    def _parse(self, command: Any, reply: Any, options: dict[str, Any]) -> Any:
        """What redis-py's parse_response does with a reply it read."""
        options.pop(NEVER_DECODE, None)
        options.pop(EMPTY_RESPONSE, None)
        options.pop("keys", None)
        callback = self.response_callbacks.get(command)
        return callback(reply, **options) if callback is not None else reply

    async def _connect(self) -> _Wire:
        """The live connection; opened once however many callers wait for it, so that the
        commands they then send still share a write."""
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._open())
        return await asyncio.shield(self._connecting)

    async def _open(self) -> _Wire:
        settings = self._settings
        loop = asyncio.get_running_loop()
        encoding = settings.get("encoding", "utf-8") if settings.get("decode_responses") else None
        if "path" in settings:
            opening = loop.create_unix_connection(lambda: _Wire(encoding), settings["path"])
        else:
            host, port = settings.get("host", "localhost"), settings.get("port", 6379)
            opening = loop.create_connection(lambda: _Wire(encoding), host, port)
        try:
            _, wire = await asyncio.wait_for(opening, settings.get("socket_connect_timeout") or 5.0)
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"Cannot connect to Redis: {exc}") from exc
        await self._handshake(wire)
        self._wire = wire
        return wire

    async def _handshake(self, wire: _Wire) -> None:
        settings = self._settings
        commands: list[tuple[Any, ...]] = []
        if settings.get("password"):
            user = settings.get("username")
            commands.append(
                ("AUTH", user, settings["password"]) if user else ("AUTH", settings["password"])
            )
        if settings.get("db"):
            commands.append(("SELECT", settings["db"]))
        futures = [self._send(wire, command) for command in commands]
        try:
            # A Redis that accepts and never answers must not hang the handshake either.
            await asyncio.wait_for(asyncio.gather(*futures), settings.get("socket_timeout"))
        except TimeoutError:
            wire.fail(RedisTimeoutError("Timeout reading from Redis"))
            raise RedisTimeoutError(
                "Redis did not answer the connection's AUTH or SELECT"
            ) from None
        except Exception:  # AuthenticationError, a SELECT out of range: the wire is no use
            wire.fail(RedisConnectionError("Redis refused the connection's AUTH or SELECT"))
            raise

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._wire is not None:
            self._wire.fail(RedisConnectionError("The client was closed"))
            self._wire = None
        await super().aclose(close_connection_pool)
