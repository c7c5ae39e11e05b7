"""The workspace's tools over MCP: `<slug>.<host>/mcp`, Streamable HTTP (stateless, JSON
responses), for MCP clients (desktop assistants, IDEs, other agents' runtimes).

Who calls: `Authorization: Bearer <workspace API key>` with the `tools` scope, checked (and
counted against the key's rate limit) by the /v1 API's own check, which the composition root
plugs in (aisaas/asgi.py): `agents` sits below `api` and may not import it. The key must belong
to the workspace of the Host. It acts for the person who created it, with that person's role
today (layer 2: a member who left, or a key without a creator, is refused), and for the agent
the client names, `X-Agent: <slug>` (or `?agent=<slug>` for clients that cannot set headers),
whose allowlist is what the client lists and may call (layer 1). An agent run calls with its
own short-lived token instead (`Authorization: Bearer <agent token>`, apps/agents/identity.py):
verified for the Host's workspace (signature, audience, expiry, not revoked), it names the
agent and the person it acts for, so no X-Agent is needed (one that names another agent is
refused).

Every call takes the one path (`tool_call`, via "mcp"): validation, the person's rights,
idempotency (each request is a run of its own), the audit row. A refusal before MCP (no key,
another workspace's key, no agent) is an HTTP 4xx whose body is a JSON-RPC error, so MCP clients
show its message; a tool that is refused or fails is a tool result with `isError`, never a
protocol error.

Like /v1 (apps/api/app.py says why) it answers ahead of Django, fully async, with the ORM work
in worker threads that keep their connection. daphne sends no lifespan events, so the SDK's
session manager is started by the first request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import parse_qs
from uuid import uuid4

import mcp_types as types
import structlog
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.http import Http404
from django_tenants.utils import schema_context
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from apps.common.channels import header, hostname
from apps.common.errors import ApplicationError
from apps.common.tenancy import use_public_schema
from apps.workspaces.api_keys import SECRET_PREFIX
from apps.workspaces.models import ApiKey, Domain, Membership, User, Workspace
from apps.workspaces.selectors import membership_get

from .identity import agent_token_verify
from .models import Agent
from .selectors import access_agent_by_ref
from .tools.registry import ToolContext, ToolSpec, tools_for
from .tools.runner import ToolOutcome, tool_call

log = structlog.get_logger(__name__)

PATH = "/mcp"
SCOPE = "tools"  # the API key scope (apps/workspaces/api_keys.py)
AGENT_HEADER = b"x-agent"
_CALLER = "aisaas.mcp_caller"  # where the ASGI scope carries the caller to the handlers

T = TypeVar("T")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class KeyCheck(Protocol):
    """The API's key check: the key of `authorization`, allowed `need` and counted against its
    rate limit; raises a refusal (401, 403, 429) otherwise."""

    async def __call__(self, authorization: str, *, need: str) -> ApiKey: ...


@runtime_checkable
class Refusal(Protocol):
    """What a key check raises: the API's `ApiError` and our `ApplicationError`s both fit."""

    status: int
    message: str


class McpRefusal(ApplicationError):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class McpCaller:
    """Who calls the tools: in `workspace`, as `agent`, for `user` (with `membership`)."""

    workspace: Workspace
    agent: Agent
    user: User
    membership: Membership
    key_prefix: str

    def context(self) -> ToolContext:
        # A run of its own per request: a call is never answered from another's result.
        return ToolContext(
            workspace=self.workspace,
            agent=self.agent,
            user=self.user,
            membership=self.membership,
            run_key=f"mcp-{uuid4().hex}",
            via="mcp",
            resume=("self", ""),  # nothing waits: an approved call runs on its own
        )


# --- who calls (sync: worker threads) ----------------------------------------------------------


def mcp_caller(*, api_key: ApiKey, host: str, agent_ref: str) -> McpCaller:
    """The caller of an MCP request made with `api_key` (already checked) on `host` for the
    agent `agent_ref`. Raises McpRefusal (403, 404)."""
    workspace = api_key.workspace
    if not Domain.objects.filter(tenant=workspace, domain=host).exists():
        raise McpRefusal(
            403,
            "wrong_workspace",
            f"The API key {api_key.prefix}… belongs to another workspace; use it at "
            f"{workspace.url}mcp.",
        )
    user = api_key.created_by
    membership = membership_get(workspace=workspace, user=user) if user is not None else None
    if user is None or membership is None or not user.is_active:
        raise McpRefusal(
            403,
            "creator_not_member",
            f"The API key {api_key.prefix}… acts for the person who created it, who is no "
            "longer a member of this workspace; ask an owner or admin for a new key.",
        )
    with schema_context(workspace.schema_name):
        try:
            agent = access_agent_by_ref(ref=agent_ref)
        except Http404:
            raise McpRefusal(
                404,
                "unknown_agent",
                f"There is no agent {agent_ref!r} in this workspace; name one by its slug in "
                "the X-Agent header (the Agents page shows each agent's slug).",
            ) from None
    if not agent.is_active:
        raise McpRefusal(403, "agent_paused", f"The agent {agent.name} is paused.")
    return McpCaller(workspace, agent, user, membership, api_key.prefix)


def _on_kept_connection(work: Callable[[], T]) -> T:
    """Run ORM work on this worker thread's kept connection (nothing closes it between
    requests); a broken one is dropped so that the next request reconnects."""
    try:
        use_public_schema()
        return work()
    except (OperationalError, InterfaceError):
        connection.close()
        raise


def mcp_token_caller(*, token: str, host: str, agent_ref: str) -> McpCaller:
    """The caller of an MCP request made with an agent token on `host`: the token is verified
    for the Host's workspace and names the agent and the person. Raises AgentTokenError (401)
    or McpRefusal."""
    domain = Domain.objects.select_related("tenant").filter(domain=host).first()
    if domain is None:
        raise McpRefusal(404, "unknown_workspace", f"No workspace is served at {host}.")
    workspace = domain.tenant
    claims = agent_token_verify(token, workspace=workspace)
    user = User.objects.filter(pk=claims.on_behalf_of_id, is_active=True).first()
    membership = membership_get(workspace=workspace, user=user) if user is not None else None
    if user is None or membership is None:
        raise McpRefusal(
            403,
            "creator_not_member",
            "The person this agent run acts for is no longer a member of this workspace.",
        )
    with schema_context(workspace.schema_name):
        agent = Agent.objects.filter(pk=claims.agent_id).first()
    if agent is None or not agent.is_active:
        raise McpRefusal(403, "agent_paused", "The token's agent is deleted or paused.")
    if agent_ref and agent_ref not in (agent.slug, str(agent.pk)):
        raise McpRefusal(
            403, "wrong_agent", f"This token is {agent.name}'s; it cannot act as {agent_ref!r}."
        )
    return McpCaller(workspace, agent, user, membership, f"agent-token:{claims.jti[:8]}")


def _token_caller_sync(token: str, host: str, agent_ref: str) -> McpCaller:
    return _on_kept_connection(
        lambda: mcp_token_caller(token=token, host=host, agent_ref=agent_ref)
    )


def _caller_sync(api_key: ApiKey, host: str, agent_ref: str) -> McpCaller:
    return _on_kept_connection(lambda: mcp_caller(api_key=api_key, host=host, agent_ref=agent_ref))


def _call_sync(caller: McpCaller, name: str, arguments: dict[str, Any]) -> ToolOutcome:
    def work() -> ToolOutcome:
        with schema_context(caller.workspace.schema_name):
            return tool_call(caller.context(), name, arguments)

    return _on_kept_connection(work)


def _tools_sync(caller: McpCaller) -> list[ToolSpec[Any, Any]]:
    # Remote tools (`<server>.<tool>`) are read from the workspace's schema: ORM work.
    return _on_kept_connection(lambda: tools_for(caller.agent.tools or [], caller.workspace))


_resolve_caller = sync_to_async(_caller_sync, thread_sensitive=False)
_resolve_token_caller = sync_to_async(_token_caller_sync, thread_sensitive=False)
_run_tool = sync_to_async(_call_sync, thread_sensitive=False)
_agent_tools = sync_to_async(_tools_sync, thread_sensitive=False)


# --- MCP: the agent's tools ----------------------------------------------------------------------


def mcp_tool(spec: ToolSpec[Any, Any]) -> types.Tool:
    """A registry tool as MCP lists it: its JSON Schema, and its flags as annotations."""
    return types.Tool(
        name=spec.name,
        title=spec.label or None,
        description=spec.description,
        input_schema=spec.parameters(),
        annotations=types.ToolAnnotations(
            title=spec.label or None,
            read_only_hint=spec.read_only,
            destructive_hint=spec.destructive,
            open_world_hint=spec.external,
        ),
    )


def mcp_result(outcome: ToolOutcome) -> types.CallToolResult:
    """A tool's outcome as an MCP tool result: the output as structured content and JSON text,
    or the reason it was refused or failed, with `isError`."""
    if outcome.ok:
        text = json.dumps(outcome.result, ensure_ascii=False)
        return types.CallToolResult(
            content=[types.TextContent(text=text)], structured_content=outcome.result
        )
    return types.CallToolResult(
        content=[types.TextContent(text=outcome.summary)],
        structured_content={"status": outcome.status, "error": outcome.summary},
        is_error=True,
    )


def _caller_of(ctx: ServerRequestContext[Any, Any]) -> McpCaller:
    caller = ctx.request.scope.get(_CALLER) if ctx.request is not None else None
    if not isinstance(caller, McpCaller):  # only McpEndpoint reaches the handlers
        raise RuntimeError("An MCP request arrived without its caller.")
    return caller


async def _list_tools(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    caller = _caller_of(ctx)
    return types.ListToolsResult(tools=[mcp_tool(s) for s in await _agent_tools(caller)])


async def _call_tool(
    ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    caller = _caller_of(ctx)
    try:
        outcome = await _run_tool(caller, params.name, params.arguments or {})
    except Exception:
        log.exception("agents.mcp_call_failed", tool=params.name, agent=caller.agent.pk)
        return types.CallToolResult(
            content=[types.TextContent(text="The tool call failed on a server error.")],
            is_error=True,
        )
    return mcp_result(outcome)


def mcp_server() -> Server[Any]:
    return Server(
        "aisaas",
        version="1",
        instructions="The tools of one agent of this workspace, named by the X-Agent header.",
        on_list_tools=_list_tools,
        on_call_tool=_call_tool,
    )


# --- HTTP ---------------------------------------------------------------------------------------


class McpEndpoint:
    """ASGI middleware: answers `/mcp` (on workspace hosts), passes everything else on."""

    def __init__(self, app: ASGIApp, *, key_check: KeyCheck):
        self.app = app
        self.key_check = key_check
        self.manager = StreamableHTTPSessionManager(
            app=mcp_server(),
            stateless=True,
            json_response=True,
            # The SDK's Host check takes fixed names only; this endpoint checks the Host against
            # the workspace's domains and refuses cross-origin requests itself (`_authenticate`).
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self._running = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != PATH:
            await self.app(scope, receive, send)
            return
        try:
            caller = await self._authenticate(scope)
            await self._started()
        except Exception as exc:
            if not isinstance(exc, Refusal):
                log.exception("agents.mcp_unexpected_error", path=scope["path"])
            await _refuse(send, exc)
            return
        await self.manager.handle_request({**scope, _CALLER: caller}, receive, send)

    async def _authenticate(self, scope: Scope) -> McpCaller:
        host = hostname(header(scope, b"host"))
        if host in settings.PUBLIC_HOSTS:
            port = f":{settings.SITE_PORT}" if settings.SITE_PORT else ""
            raise McpRefusal(
                404,
                "wrong_host",
                "MCP is served on each workspace's own address: "
                f"{settings.SITE_SCHEME}://<workspace>.{settings.BASE_DOMAIN}{port}/mcp.",
            )
        origin = header(scope, b"origin")
        own = (header(scope, b"host") or "").lower()
        if origin is not None and origin.split("://", 1)[-1].lower() != own:
            raise McpRefusal(403, "cross_origin", "Cross-origin requests are not accepted.")
        authorization = header(scope, b"authorization") or ""
        scheme, _, secret = authorization.strip().partition(" ")
        secret = secret.strip()
        if (
            scheme.lower() == "bearer"
            and secret.count(".") == 2
            and not secret.startswith(SECRET_PREFIX)
        ):  # a JWT: an agent run's own token
            return await _resolve_token_caller(secret, host, _agent_ref(scope))
        api_key = await self.key_check(authorization, need=SCOPE)
        agent_ref = _agent_ref(scope)
        if not agent_ref:
            raise McpRefusal(
                400,
                "missing_agent",
                "Name the agent whose tools to use: send its slug in the X-Agent header "
                "(or as ?agent=<slug>).",
            )
        return await _resolve_caller(api_key, host, agent_ref)

    async def _started(self) -> None:
        """Start the session manager once, on the first request (no lifespan under daphne)."""
        if self._running.is_set():
            return
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())
        waiter = asyncio.ensure_future(self._running.wait())
        await asyncio.wait({self._runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not self._running.is_set():  # it failed to start: say why, on every request
            self._runner.result()

    async def _run(self) -> None:
        async with self.manager.run():
            self._running.set()
            await asyncio.Event().wait()  # for the life of the process


def _agent_ref(scope: Scope) -> str:
    named = header(scope, AGENT_HEADER)
    if named is None:
        query = parse_qs(scope.get("query_string", b"").decode("latin1"))
        named = (query.get("agent") or [""])[0]
    return named.strip()


async def _refuse(send: Send, exc: Exception) -> None:
    """The HTTP answer to a request refused before MCP: a JSON-RPC error the client shows."""
    status, message, headers = 500, "The server had an error processing your request.", {}
    if isinstance(exc, Refusal):
        status, message = exc.status, exc.message
        headers = dict(getattr(exc, "headers", None) or {})
    code = -32600 if status < 500 else -32603  # invalid request | internal error
    reason = getattr(exc, "code", None) or ("internal_error" if status >= 500 else "refused")
    body = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": code, "message": message, "data": {"status": status, "reason": reason}},
    }
    if status == 401:
        headers.setdefault("www-authenticate", 'Bearer realm="aisaas"')
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": _headers({"content-type": "application/json", **headers}.items()),
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def _headers(items: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin1"), value.encode("latin1")) for name, value in items]
