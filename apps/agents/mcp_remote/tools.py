"""An external MCP server's tools as registry tools: `<server>.<tool>`, one path with the rest.

A remote tool has no pydantic model of its own, so its spec (`RemoteToolSpec`) keeps the
server's JSON Schema: `parameters()` returns it (what the model sees), and its input model is
made per schema — a pydantic model that allows any field and checks the arguments against the
schema with `jsonschema`, so a bad argument is an `invalid` result in the runner, as for a
built-in tool. The runner's path is unchanged: allowlist, validation, layer 2, idempotency,
the call (here: over the network, under the transport's deadline and cap), the audit row.

Flags come from the server's ToolAnnotations, and are hints from a server we do not control,
read conservatively: `readOnlyHint` → read_only; otherwise writes, and `destructiveHint` →
destructive; `openWorldHint` false → not external, anything else (true or absent) → external.
No annotations at all → writes + external.

Layer 2 (decided here): any member may call a remote tool through an agent that lists it,
except a destructive one, which only owners and admins may — the same rule as the built-in
destructive tools, since we cannot know whose data a remote server would change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import mcp_types as types
from django_tenants.utils import get_public_schema_name, schema_context
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from apps.agents.models import ExternalMcpServer
from apps.agents.tools.registry import ToolContext, ToolSpec, managers_only, member_may
from apps.common import crypto
from apps.common.tenancy import current_schema

from .transport import TIMEOUT_SECONDS, RemoteError, exchange

if TYPE_CHECKING:
    from apps.workspaces.models import Workspace

T = TypeVar("T")

TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MAX_TOOLS = 100
DESCRIPTION_MAX = 1_000
SCHEMA_MAX_CHARS = 20_000


class RemoteArgs(BaseModel):
    """Any JSON object; the per-schema subclass checks it against the server's schema."""

    model_config = ConfigDict(extra="allow")


class RemoteResult(BaseModel):
    """What the server answered: its text content, and its structured content when it gave
    one."""

    text: str = ""
    structured: Any = None


@dataclass(frozen=True)
class RemoteToolSpec(ToolSpec[RemoteArgs, RemoteResult]):
    server: str = ""
    remote_name: str = ""
    input_schema: dict[str, Any] = field(default_factory=dict)

    def parameters(self) -> dict[str, Any]:
        return self.input_schema


# --- listing: the server's tools as stored rows ---------------------------------------------------


def annotation_flags(annotations: types.ToolAnnotations | None) -> list[str]:
    """The registry flags for a tool with these annotations (see the module docstring)."""
    if annotations is None:
        return ["writes", "external"]
    flags = []
    if annotations.read_only_hint:
        flags.append("read_only")
    else:
        flags.append("writes")
        if annotations.destructive_hint:
            flags.append("destructive")
    if annotations.open_world_hint is not False:
        flags.append("external")
    return flags


def tool_row(tool: types.Tool) -> dict[str, Any] | None:
    """A listed tool as stored on the server's row; None for one we will not offer (a name that
    cannot be namespaced, or an input schema that is not a valid JSON Schema object)."""
    schema = tool.input_schema
    if not TOOL_NAME_RE.match(tool.name) or not isinstance(schema, dict):
        return None
    if schema.get("type") != "object" or len(json.dumps(schema)) > SCHEMA_MAX_CHARS:
        return None
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError:
        return None
    return {
        "name": tool.name,
        "title": (tool.title or (tool.annotations.title if tool.annotations else None) or "")[:100],
        "description": (tool.description or "")[:DESCRIPTION_MAX],
        "input_schema": schema,
        "flags": annotation_flags(tool.annotations),
    }


def remote_list_tools(*, url: str, headers: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    """The tools the server lists, as rows, and how many it listed that were left out."""

    async def work(client: Any) -> list[types.Tool]:
        found: list[types.Tool] = []
        cursor = None
        for _ in range(10):  # pages; a server that paginates forever is cut
            page = await client.list_tools(cursor=cursor)
            found.extend(page.tools)
            cursor = page.next_cursor
            if not cursor or len(found) >= MAX_TOOLS:
                break
        return found

    listed = exchange(url, headers, work)
    rows = [row for tool in listed[:MAX_TOOLS] if (row := tool_row(tool)) is not None]
    return rows, len(listed) - len(rows)


# --- calling ------------------------------------------------------------------------------------


def server_headers(server: ExternalMcpServer) -> dict[str, str]:
    """The headers every request to `server` carries: its secret, decrypted in memory only."""
    if not server.header_name or not server.encrypted_header_value:
        return {}
    return {server.header_name: crypto.decrypt(server.encrypted_header_value)}


def remote_call(
    *, url: str, headers: dict[str, str], name: str, arguments: dict[str, Any]
) -> RemoteResult:
    """Call the tool `name` on the server; RemoteError when it fails or answers an error."""

    async def work(client: Any) -> types.CallToolResult:
        result: types.CallToolResult = await client.call_tool(name, arguments)
        return result

    result = exchange(url, headers, work)
    text = "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))
    if result.is_error:
        raise RemoteError(f"The MCP server's tool failed: {text[:300] or 'no reason given'}.")
    return RemoteResult(text=text, structured=result.structured_content)


@lru_cache(maxsize=256)
def _args_model(schema_json: str) -> type[RemoteArgs]:
    """The input model for one schema: any object, checked against the schema."""
    schema = json.loads(schema_json)
    validator = validator_for(schema, default=Draft202012Validator)(schema)

    class Args(RemoteArgs):
        @model_validator(mode="before")
        @classmethod
        def _matches_schema(cls, data: Any) -> Any:
            errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
            if errors:
                problems = [
                    f"{'.'.join(str(p) for p in e.absolute_path) or 'arguments'}: {e.message}"
                    for e in errors[:5]
                ]
                raise PydanticCustomError(
                    "json_schema", "{problems}", {"problems": "; ".join(problems)}
                )
            return data

    return Args


def remote_spec(server: ExternalMcpServer, row: dict[str, Any]) -> RemoteToolSpec:
    """The registry spec of one of `server`'s stored tools."""
    remote_name = row["name"]
    flags = set(row.get("flags") or [])
    schema = row["input_schema"]

    def call(ctx: ToolContext, args: RemoteArgs) -> RemoteResult:
        return remote_call(
            url=server.url,
            headers=server_headers(server),  # decrypted only for the call
            name=remote_name,
            arguments=args.model_dump(mode="json"),
        )

    return RemoteToolSpec(
        name=f"{server.name}.{remote_name}",
        description=row.get("description") or f"{remote_name} on the MCP server {server.name}",
        input=_args_model(json.dumps(schema, sort_keys=True)),
        output=RemoteResult,
        func=call,
        read_only="read_only" in flags,
        writes="writes" in flags,
        destructive="destructive" in flags,
        external="external" in flags,
        timeout=TIMEOUT_SECONDS,
        permitted=managers_only if "destructive" in flags else member_may,
        label=row.get("title") or "",
        server=server.name,
        remote_name=remote_name,
        input_schema=schema,
    )


# --- the registry's seam (apps/agents/tools/registry.py) ----------------------------------------


def _in_workspace(workspace: Workspace | None, read: Callable[[], T], empty: T) -> T:
    """`read` in `workspace`'s schema (or the current one); `empty` in the public schema, which
    has no servers: a server and its tools belong to one workspace only."""
    if workspace is not None and current_schema() != workspace.schema_name:
        with schema_context(workspace.schema_name):
            return read()
    if current_schema() == get_public_schema_name():
        return empty
    return read()


def remote_tool_get(name: str, *, workspace: Workspace | None = None) -> RemoteToolSpec | None:
    """The remote tool `<server>.<tool>` of this workspace, from the stored list (no network)."""
    server_name, _, remote_name = name.partition(".")

    def read() -> RemoteToolSpec | None:
        server = ExternalMcpServer.objects.filter(name=server_name).first()
        if server is None:
            return None
        row = next((r for r in server.tools or [] if r.get("name") == remote_name), None)
        return remote_spec(server, row) if row is not None else None

    return _in_workspace(workspace, read, None)


def remote_tool_names(*, workspace: Workspace | None = None) -> list[str]:
    """Every remote tool of this workspace, `<server>.<tool>`, by server then tool."""

    def read() -> list[str]:
        return [
            f"{server.name}.{row['name']}"
            for server in ExternalMcpServer.objects.order_by("name")
            for row in sorted(server.tools or [], key=lambda r: str(r.get("name")))
        ]

    return _in_workspace(workspace, read, [])
