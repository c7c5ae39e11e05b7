"""Talking to an external MCP server: Streamable HTTP through the SSRF rules of
apps/common/fetch.py, with one deadline and a cap on what the server sends back.

Every request the MCP SDK makes (the first POST, a same-origin redirect it follows, the GET
stream, the closing DELETE) passes through `PinnedTransport`: its host is resolved and every
address checked as the fetcher checks them (private and loopback addresses refused unless
`FETCH_ALLOWED_NETWORKS` allows them), and the connection goes to the checked address, so a DNS
answer that changes in between cannot redirect it. A response body past `max_bytes` is cut off
with an error. The whole exchange (connect, handshake, the request) runs under one deadline.

Failures of any kind become `RemoteError` with a message a person (and the model) can read:
the server is outside our control and may hang, refuse, or answer garbage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from apps.common.errors import ApplicationError

# fetch.py's URL check is the one SSRF rule of the platform; it has no public name for "check
# and pin without fetching", so the MCP client reuses it as it is rather than copy it.
from apps.common.fetch import FetchError, _target, resolve

T = TypeVar("T")

TIMEOUT_SECONDS = 10.0  # one deadline for a whole exchange with a server
MAX_RESPONSE_BYTES = 1_000_000  # per HTTP response
USER_AGENT = "aisaas-mcp-client/1"


class RemoteError(ApplicationError):
    """An external MCP server could not be used: unreachable, refused, too slow, too big, or
    not speaking MCP. The message says which, never the secret."""


def check_url(url: str) -> None:
    """Raise FetchError unless `url` is an http(s) URL on an address the fetcher may reach."""
    _target(url, None, resolve)


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, stream: httpx2.AsyncByteStream, max_bytes: int):
        self._stream = stream
        self._max_bytes = max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._stream:
            seen += len(chunk)
            if seen > self._max_bytes:
                raise httpx2.StreamError(f"The server sent more than {self._max_bytes:,} bytes.")
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class PinnedTransport(httpx2.AsyncBaseTransport):
    """Sends each request to the address checked for its host; caps each response body."""

    def __init__(self, *, max_bytes: int = MAX_RESPONSE_BYTES):
        self._inner = httpx2.AsyncHTTPTransport(trust_env=False)
        self._max_bytes = max_bytes
        self.refused_with: int | None = None  # the status of a POST the server refused

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        target = await anyio.to_thread.run_sync(_target, str(request.url), None, resolve)
        headers = httpx2.Headers(request.headers)
        headers["Host"] = target.host
        hostname = target.host.rsplit(":", 1)[0].strip("[]")
        pinned = httpx2.Request(
            request.method,
            target.url,
            headers=headers,
            stream=request.stream,
            extensions={**request.extensions, "sni_hostname": hostname},
        )
        response = await self._inner.handle_async_request(pinned)
        if request.method == "POST" and response.status_code >= 400:
            self.refused_with = response.status_code  # the SDK's own error does not say
        stream = response.stream
        assert isinstance(stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CappedStream(stream, self._max_bytes),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def connected(
    url: str, headers: Mapping[str, str], *, timeout: float, transport: PinnedTransport
) -> AsyncIterator[Client]:
    """An MCP client session with the server at `url`, sending `headers` on every request."""
    http = httpx2.AsyncClient(
        headers={"user-agent": USER_AGENT, **headers},
        timeout=timeout,
        transport=transport,
        trust_env=False,
    )
    async with http, Client(streamable_http_client(url, http_client=http), cache=None) as client:
        yield client


def exchange(url: str, headers: Mapping[str, str], work: Callable[[Client], Awaitable[T]]) -> T:
    """Run `work` with a client of the server at `url` under one deadline, from sync code (the
    tool runner, services); RemoteError on any failure."""
    timeout = TIMEOUT_SECONDS
    try:
        check_url(url)
    except FetchError as exc:
        raise RemoteError(exc.message, field="url") from exc
    pinned = PinnedTransport()

    async def run() -> T:
        with anyio.fail_after(timeout):
            async with connected(url, headers, timeout=timeout, transport=pinned) as client:
                return await work(client)

    try:
        return _run_async(run)
    except TimeoutError as exc:
        raise RemoteError(f"The MCP server did not answer within {timeout:g} s.") from exc
    except RemoteError:
        raise
    except Exception as exc:  # the server's failure, in whatever shape the SDK raises it
        if pinned.refused_with is not None:
            raise RemoteError(
                f"The MCP server answered HTTP {pinned.refused_with}"
                + (" (check the secret header)." if pinned.refused_with in (401, 403) else ".")
            ) from exc
        raise RemoteError(_describe(exc)) from exc


def _run_async(make: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run, also from a thread that already runs a loop (then in a thread of its own)."""

    async def main() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _describe(exc: BaseException) -> str:
    """The most telling reason among `exc` (often an exception group from the SDK's tasks)."""
    leaves = _leaves(exc)
    for leaf in leaves:
        if isinstance(leaf, TimeoutError):
            return f"The MCP server did not answer within {TIMEOUT_SECONDS:g} s."
        if isinstance(leaf, FetchError | RemoteError):
            return leaf.message
    for leaf in leaves:
        if isinstance(leaf, httpx2.StreamError):
            return str(leaf) or "The server's answer was cut off."
        if isinstance(leaf, httpx2.HTTPStatusError):
            return f"The MCP server answered HTTP {leaf.response.status_code}."
        if isinstance(leaf, httpx2.TransportError):
            return f"The MCP server could not be reached ({type(leaf).__name__})."
        if isinstance(leaf, MCPError):
            return f"The MCP server refused: {str(leaf)[:200]}"
    first: Any = leaves[0] if leaves else exc
    return f"The MCP server could not be used ({type(first).__name__})."
