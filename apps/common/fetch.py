"""Fetching a URL someone else chose (a document to import, an agent's `http_get`) without
letting them reach inside our network (SSRF).

- http and https only, no credentials in the URL, an optional host allowlist;
- the host is resolved once and every address checked: private, loopback, link-local (cloud
  metadata at 169.254.169.254), shared, multicast and reserved addresses are refused — unless
  in `settings.FETCH_ALLOWED_NETWORKS` (empty by default; tests allow loopback);
- the connection goes to the address that was checked (the URL's host is sent as Host and as
  the TLS server name), so a DNS answer that changes between the check and the connect
  (rebinding) cannot redirect it;
- redirects are followed by hand, each hop checked the same way, at most FETCH_MAX_REDIRECTS;
- a declared Content-Length over the cap is refused before reading; a body that grows past it
  is cut off and refused; one timeout covers connect, each read and the whole fetch.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx2
from django.conf import settings

from .errors import ApplicationError

Resolver = Callable[[str, int], list[str]]
REDIRECTS = (301, 302, 303, 307, 308)


class FetchError(ApplicationError):
    def __init__(self, message: str) -> None:
        super().__init__(message, field="url")


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str  # after redirects
    status: int
    content_type: str
    data: bytes


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.FETCH_ALLOWED_NETWORKS]


def _check_address(address: str) -> None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in _allowed_networks()):
        return
    if not ip.is_global or ip.is_multicast:
        raise FetchError(f"That address points into a private network ({ip}); it is not fetched.")


def _check_host(host: str, allowed_hosts: Collection[str] | None) -> None:
    if allowed_hosts is None:
        return
    host = host.lower().rstrip(".")
    for allowed in allowed_hosts:
        allowed = allowed.lower().rstrip(".")
        if host == allowed or (allowed.startswith(".") and host.endswith(allowed)):
            return
    raise FetchError(f"{host} is not on the list of hosts that may be fetched.")


@dataclass(frozen=True, slots=True)
class _Target:
    url: str  # with the checked address in place of the host
    host: str
    address: str


def _target(url: str, allowed_hosts: Collection[str] | None, resolver: Resolver) -> _Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise FetchError(f"That is not a valid URL: {exc}.") from exc
    if parts.scheme not in ("http", "https"):
        raise FetchError("Only http:// and https:// URLs can be fetched.")
    if parts.username or parts.password:
        raise FetchError("URLs with a user name or password are not fetched.")
    host = parts.hostname or ""
    if not host:
        raise FetchError("The URL has no host.")
    _check_host(host, allowed_hosts)
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [host] if _is_ip(host) else resolver(host, port)
    except OSError as exc:
        raise FetchError(f"{host} could not be resolved.") from exc
    if not addresses:
        raise FetchError(f"{host} could not be resolved.")
    for address in addresses:
        _check_address(address)
    address = addresses[0]
    netloc = f"[{address}]" if ":" in address else address
    pinned = urlunsplit((parts.scheme, f"{netloc}:{port}", parts.path or "/", parts.query, ""))
    return _Target(url=pinned, host=parts.netloc.rsplit("@", 1)[-1], address=address)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def fetch_url(
    url: str,
    *,
    allowed_hosts: Collection[str] | None = None,
    max_bytes: int | None = None,
    timeout: float | None = None,
    resolver: Resolver = resolve,
) -> Fetched:
    """GET `url` under the rules above; raise FetchError with a reason a person understands."""
    max_bytes = max_bytes or settings.FETCH_MAX_BYTES
    timeout = timeout or settings.FETCH_TIMEOUT
    deadline = time.monotonic() + timeout
    with httpx2.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(settings.FETCH_MAX_REDIRECTS + 1):
            target = _target(url, allowed_hosts, resolver)
            status, headers, data = _get(client, target, max_bytes=max_bytes, deadline=deadline)
            if status in REDIRECTS and headers.get("location"):
                url = urljoin(url, headers["location"])
                continue
            return Fetched(
                url=url, status=status, content_type=headers.get("content-type", ""), data=data
            )
    raise FetchError(f"More than {settings.FETCH_MAX_REDIRECTS} redirects; not followed.")


def _get(
    client: httpx2.Client, target: _Target, *, max_bytes: int, deadline: float
) -> tuple[int, dict[str, str], bytes]:
    hostname = target.host.rsplit(":", 1)[0].strip("[]")
    extensions: dict[str, Any] = {"sni_hostname": hostname}
    headers = {"Host": target.host, "User-Agent": "aisaas-fetch/1", "Accept-Encoding": "identity"}
    try:
        with client.stream("GET", target.url, headers=headers, extensions=extensions) as reply:
            declared = reply.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(_too_big(max_bytes))
            body = bytearray()
            for piece in reply.iter_raw():
                body.extend(piece)
                if len(body) > max_bytes:
                    raise FetchError(_too_big(max_bytes))
                if time.monotonic() > deadline:
                    raise FetchError("The server took too long to answer.")
            return reply.status_code, {k.lower(): v for k, v in reply.headers.items()}, bytes(body)
    except httpx2.TimeoutException as exc:
        raise FetchError("The server took too long to answer.") from exc
    except httpx2.HTTPError as exc:
        raise FetchError(f"The server could not be reached: {type(exc).__name__}.") from exc


def _too_big(max_bytes: int) -> str:
    return f"The page is larger than {max_bytes:,} bytes, the most that is fetched."
