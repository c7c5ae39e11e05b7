"""External MCP servers: register, refresh the tool list, remove (owners and admins), and the
reads of the Agents page.

A server's secret header value is encrypted before it reaches the database (as BYOK keys are)
and decrypted in memory for each exchange; pages show its last 4 characters. Its URL must pass
the fetcher's SSRF checks when registered, and again on every request (transport.py). The tool
list is fetched when the server is registered (its first use) and when an admin refreshes it,
and stored on the row, so listing tools never needs the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from apps.agents.models import ExternalMcpServer
from apps.common import crypto
from apps.common.errors import ApplicationError, PermissionDeniedError
from apps.common.fetch import FetchError
from apps.workspaces.models import Membership

from .tools import remote_list_tools, server_headers
from .transport import RemoteError, check_url

NAME_MAX = 40
NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")  # no dot: it separates server and tool
URL_MAX = 500
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,99}$")
HEADER_VALUE_MAX = 4_000
# Headers the MCP transport sets itself, or that would change how the request is framed.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "accept",
        "connection",
        "transfer-encoding",
        "user-agent",
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
    }
)
SERVERS_MAX = 20


def _require_manager(actor: Membership, what: str) -> None:
    if not actor.can_manage:
        raise PermissionDeniedError(f"Only owners and admins can {what}.")


@dataclass(frozen=True)
class McpServerFields:
    name: str
    url: str
    header_name: str = ""
    header_value: str = ""


def _clean(fields: McpServerFields) -> McpServerFields:
    name = fields.name.strip().lower()
    if not NAME_RE.match(name) or len(name) > NAME_MAX:
        raise ApplicationError(
            f"Name the server with lowercase letters, digits and single hyphens (up to "
            f"{NAME_MAX}); its tools are called “<name>.<tool>”.",
            field="name",
        )
    if ExternalMcpServer.objects.filter(name=name).exists():
        raise ApplicationError(f"A server is already named “{name}”.", field="name")
    url = fields.url.strip()
    if len(url) > URL_MAX:
        raise ApplicationError(f"Keep the URL to {URL_MAX} characters.", field="url")
    try:
        check_url(url)
    except FetchError as exc:
        raise ApplicationError(exc.message, field="url") from exc
    header_name, header_value = fields.header_name.strip(), fields.header_value.strip()
    if bool(header_name) != bool(header_value):
        raise ApplicationError(
            "Give both the header's name and its secret value, or neither.",
            field="header_value" if header_name else "header_name",
        )
    if header_name and (
        not HEADER_NAME_RE.match(header_name) or header_name.lower() in RESERVED_HEADERS
    ):
        raise ApplicationError(
            "That header name cannot be used: letters, digits and hyphens, and not one the MCP "
            "transport sets itself (such as Host or Content-Type).",
            field="header_name",
        )
    if len(header_value) > HEADER_VALUE_MAX or any(c in header_value for c in "\r\n\x00"):
        raise ApplicationError(
            f"The secret must be one line of at most {HEADER_VALUE_MAX:,} characters.",
            field="header_value",
        )
    return McpServerFields(name, url, header_name, header_value)


def mcp_server_register(*, actor: Membership, fields: McpServerFields) -> ExternalMcpServer:
    """Register a server and list its tools. A server that cannot be listed now is kept, with
    the reason, and can be refreshed later; a URL the fetcher refuses is not registered."""
    _require_manager(actor, "add MCP servers")
    fields = _clean(fields)
    if ExternalMcpServer.objects.count() >= SERVERS_MAX:
        raise ApplicationError(f"A workspace can have at most {SERVERS_MAX} MCP servers.")
    try:
        with transaction.atomic():
            server = ExternalMcpServer.objects.create(
                name=fields.name,
                url=fields.url,
                header_name=fields.header_name,
                encrypted_header_value=(
                    crypto.encrypt(fields.header_value) if fields.header_value else ""
                ),
                header_value_last4=fields.header_value[-4:],
                created_by_id=actor.user_id,
            )
    except IntegrityError:
        raise ApplicationError(
            f"A server is already named “{fields.name}”.", field="name"
        ) from None
    return _refresh(server)


def mcp_server_refresh(*, actor: Membership, server: ExternalMcpServer) -> ExternalMcpServer:
    """List the server's tools again and store them (the reason, when it cannot be listed)."""
    _require_manager(actor, "refresh MCP servers")
    return _refresh(server)


def _refresh(server: ExternalMcpServer) -> ExternalMcpServer:
    try:
        rows, skipped = remote_list_tools(url=server.url, headers=server_headers(server))
    except RemoteError as exc:
        server.last_error = exc.message[:500]
        server.save(update_fields=["last_error", "updated_at"])
        return server
    server.tools = rows
    server.tools_refreshed_at = timezone.now()
    server.last_error = (
        f"{skipped} tool(s) left out: a name that cannot be namespaced or an invalid input schema."
        if skipped
        else ""
    )
    server.save(update_fields=["tools", "tools_refreshed_at", "last_error", "updated_at"])
    return server


def mcp_server_delete(*, actor: Membership, server: ExternalMcpServer) -> None:
    """Remove the server. Agents that list its tools keep the names, shown as unknown and
    skipped at run time, until an admin edits them."""
    _require_manager(actor, "remove MCP servers")
    server.delete()


# --- reads --------------------------------------------------------------------------------------


def mcp_server_list() -> list[ExternalMcpServer]:
    return list(ExternalMcpServer.objects.order_by("name"))


def access_mcp_server(*, server_id: Any) -> ExternalMcpServer:
    try:
        pk = int(str(server_id))
    except ValueError:
        raise Http404("No such MCP server.") from None
    found = ExternalMcpServer.objects.filter(pk=pk).first()
    if found is None:
        raise Http404("No such MCP server.")
    return found
