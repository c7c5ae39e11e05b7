"""The MCP client: an external MCP server registered by acme, its tools listed with flags from
their annotations and called as `calc.<tool>` through the one tool runner (allowlist, JSON
Schema validation, layer 2, audit), over Streamable HTTP under the fetcher's SSRF rules, with a
deadline. The server is the MCP SDK's own, served by uvicorn on a loopback port in a thread;
it refuses requests without the secret header."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
import uvicorn
from django.db import connection
from django_tenants.utils import schema_context
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations

from apps.agents.mcp_remote import transport
from apps.agents.mcp_remote.services import (
    McpServerFields,
    mcp_server_delete,
    mcp_server_refresh,
    mcp_server_register,
)
from apps.agents.models import Agent, ExternalMcpServer, ToolAudit
from apps.agents.tools.registry import ToolContext, tool_get, tool_names, tools_for
from apps.agents.tools.runner import tool_call
from apps.common.errors import ApplicationError, PermissionDeniedError
from apps.workspaces.models import Membership, User, Workspace
from apps.workspaces.selectors import membership_get
from tests.conftest import host_client

pytestmark = pytest.mark.django_db

SECRET = "calc-secret-7c1f"
HEADER = "X-Calc-Key"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def calc_app() -> MCPServer:
    calc = MCPServer("calc")

    @calc.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    @calc.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
    def wipe() -> str:
        """Erase everything."""
        return "wiped"

    @calc.tool()
    async def hang() -> str:
        """Never answers in time."""
        await anyio.sleep(30)
        return "late"

    return calc


@dataclass
class CalcServer:
    port: int
    seen_keys: list[str | None] = field(default_factory=list)

    def url(self, path: str = "/mcp") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _asgi(mcp_app: Any, record: CalcServer) -> Any:
    """The MCP app behind a secret-header check; `/garbage` answers text that is not MCP."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await mcp_app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if scope["path"] == "/garbage":
            await _plain(send, 200, b"hello, not json")
            return
        record.seen_keys.append(headers.get(HEADER.lower()))
        if headers.get(HEADER.lower()) != SECRET:
            await _plain(send, 401, b"no key")
            return
        await mcp_app(scope, receive, send)

    return app


async def _plain(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def calc_server() -> Iterator[CalcServer]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    record = CalcServer(port=port)
    mcp_app = calc_app().streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    config = uvicorn.Config(
        _asgi(mcp_app, record),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the MCP test server did not start"
        time.sleep(0.05)
    yield record
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.1/32"]


@pytest.fixture
def in_acme(acme: Workspace, loopback_allowed: None) -> Iterator[None]:
    with schema_context(acme.schema_name):
        yield


def _membership(workspace: Workspace, user: User) -> Membership:
    found = membership_get(workspace=workspace, user=user)
    assert found is not None
    return found


def _register(
    workspace: Workspace, user: User, server: CalcServer, **fields: str
) -> ExternalMcpServer:
    values = {"name": "calc", "url": server.url(), "header_name": HEADER, "header_value": SECRET}
    return mcp_server_register(
        actor=_membership(workspace, user), fields=McpServerFields(**(values | fields))
    )


def _context(workspace: Workspace, user: User, tools: list[str]) -> ToolContext:
    agent = Agent.objects.create(name="Calculator", slug="calculator", tools=tools)
    return ToolContext(
        workspace=workspace,
        agent=agent,
        user=user,
        membership=_membership(workspace, user),
        run_key="run-1",
    )


# --- registering and listing -------------------------------------------------------------------


@pytest.mark.usefixtures("in_acme")
def test_registering_lists_the_tools_with_flags_from_their_annotations(
    acme: Workspace, owner: User, calc_server: CalcServer
) -> None:
    server = _register(acme, owner, calc_server)

    assert server.last_error == ""
    assert server.tools_refreshed_at is not None
    flags = {row["name"]: row["flags"] for row in server.tools}
    assert flags == {
        "add": ["read_only"],
        "wipe": ["writes", "destructive", "external"],
        "hang": ["writes", "external"],  # no annotations: writes and reaches outside
    }
    assert {"calc.add", "calc.wipe", "calc.hang"} <= set(tool_names())
    add = tool_get("calc.add")
    assert add is not None
    assert add.parameters()["properties"].keys() == {"a", "b"}  # the server's own schema
    assert add.as_llm_tool().parameters == add.parameters()
    assert add.flags == ["read_only"]


@pytest.mark.usefixtures("in_acme")
def test_the_secret_is_stored_encrypted_and_sent_as_the_header(
    acme: Workspace, owner: User, calc_server: CalcServer
) -> None:
    calc_server.seen_keys.clear()
    server = _register(acme, owner, calc_server)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT encrypted_header_value, header_value_last4 FROM agents_externalmcpserver "
            "WHERE id = %s",
            [server.pk],
        )
        stored, last4 = cursor.fetchone()
    assert SECRET not in stored
    assert last4 == SECRET[-4:]
    assert calc_server.seen_keys
    assert set(calc_server.seen_keys) == {SECRET}


@pytest.mark.usefixtures("in_acme")
def test_a_wrong_secret_or_garbage_is_a_reason_on_the_row_never_a_crash(
    acme: Workspace, owner: User, calc_server: CalcServer
) -> None:
    wrong = _register(acme, owner, calc_server, header_value="not-the-key")
    garbage = _register(acme, owner, calc_server, name="junk", url=calc_server.url("/garbage"))

    assert wrong.tools == []
    assert "401" in wrong.last_error
    assert garbage.tools == []
    assert garbage.last_error.startswith("The MCP server")


@pytest.mark.usefixtures("in_acme")
def test_refresh_replaces_the_stored_list(
    acme: Workspace, owner: User, calc_server: CalcServer
) -> None:
    server = _register(acme, owner, calc_server)
    ExternalMcpServer.objects.filter(pk=server.pk).update(tools=[])
    server.refresh_from_db()
    assert tool_get("calc.add") is None

    mcp_server_refresh(actor=_membership(acme, owner), server=server)

    assert tool_get("calc.add") is not None


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/mcp", "http://10.1.2.3/mcp", "file:///x"])
def test_a_private_address_is_refused_at_registration(
    acme: Workspace, owner: User, settings: Any, url: str
) -> None:
    settings.FETCH_ALLOWED_NETWORKS = []
    with schema_context(acme.schema_name):
        with pytest.raises(ApplicationError) as refused:
            _register(acme, owner, CalcServer(port=9), url=url)
        assert refused.value.field == "url"
        assert not ExternalMcpServer.objects.exists()


@pytest.mark.usefixtures("in_acme")
@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        ({"name": "Calc.Tools"}, "name"),
        ({"header_name": "Host"}, "header_name"),
        ({"header_value": ""}, "header_value"),
        ({"header_value": "a\r\nb"}, "header_value"),
    ],
)
def test_bad_registrations_are_refused_precisely(
    acme: Workspace, owner: User, fields: dict[str, str], field_name: str
) -> None:
    with pytest.raises(ApplicationError) as refused:
        _register(acme, owner, CalcServer(port=9), **fields)
    assert refused.value.field == field_name
    assert not ExternalMcpServer.objects.exists()


@pytest.mark.usefixtures("in_acme")
def test_members_cannot_register_or_remove_servers(
    acme: Workspace, owner: User, member: User, calc_server: CalcServer
) -> None:
    with pytest.raises(PermissionDeniedError):
        _register(acme, member, calc_server)
    server = _register(acme, owner, calc_server)
    with pytest.raises(PermissionDeniedError):
        mcp_server_delete(actor=_membership(acme, member), server=server)
    mcp_server_delete(actor=_membership(acme, owner), server=server)
    assert tool_get("calc.add") is None


# --- calling through the runner ----------------------------------------------------------------


@pytest.mark.usefixtures("in_acme")
def test_an_allowed_remote_tool_is_called_and_audited(
    acme: Workspace, owner: User, member: User, calc_server: CalcServer
) -> None:
    _register(acme, owner, calc_server)
    ctx = _context(acme, member, ["calc.add"])

    outcome = tool_call(ctx, "calc.add", {"a": 2, "b": 3}, step=1)

    assert outcome.ok, outcome.summary
    assert outcome.result["structured"] == {"result": 5.0}
    assert outcome.content.startswith('<tool_result name="calc.add" status="ok">')
    [audit] = ToolAudit.objects.filter(tool="calc.add")
    assert (audit.status, audit.on_behalf_of_id, audit.args) == ("ok", member.pk, {"a": 2, "b": 3})
    assert [spec.name for spec in tools_for(["calc.add", "calc.gone", "current_time"])] == [
        "calc.add",
        "current_time",
    ]


@pytest.mark.usefixtures("in_acme", "autonomous")
def test_the_allowlist_schema_and_layer_two_hold_for_remote_tools(
    acme: Workspace, owner: User, member: User, calc_server: CalcServer
) -> None:
    _register(acme, owner, calc_server)
    ctx = _context(acme, member, ["calc.add", "calc.wipe"])

    not_listed = tool_call(replace_tools(ctx, ["calc.add"]), "calc.wipe", {})
    bad_args = tool_call(ctx, "calc.add", {"a": "two", "b": 3})
    missing = tool_call(ctx, "calc.add", {"a": 2})
    destructive = tool_call(ctx, "calc.wipe", {})

    assert (not_listed.status, "not enabled" in not_listed.summary) == ("denied", True)
    assert bad_args.status == "invalid"
    assert "a: 'two' is not of type 'number'" in bad_args.summary
    assert missing.status == "invalid"
    assert "'b' is a required property" in missing.summary
    assert destructive.status == "denied"  # a member; owners and admins may
    assert "only owners and admins" in destructive.summary
    statuses = list(ToolAudit.objects.order_by("pk").values_list("tool", "status"))
    assert statuses == [
        ("calc.wipe", "denied"),
        ("calc.add", "invalid"),
        ("calc.add", "invalid"),
        ("calc.wipe", "denied"),
    ]
    assert tool_call(replace_tools(ctx, ["calc.wipe"], user=owner), "calc.wipe", {}).ok


def replace_tools(ctx: ToolContext, tools: list[str], user: User | None = None) -> ToolContext:
    agent = Agent.objects.create(name="Other", slug=f"other-{len(tools)}-{user and user.pk}")
    agent.tools = tools
    agent.save()
    user = user or ctx.user
    return ToolContext(
        workspace=ctx.workspace,
        agent=agent,
        user=user,
        membership=_membership(ctx.workspace, user),
        run_key="run-2",
    )


@pytest.mark.usefixtures("in_acme", "autonomous")
def test_a_server_that_hangs_is_an_error_within_the_deadline(
    acme: Workspace, owner: User, calc_server: CalcServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(acme, owner, calc_server)
    monkeypatch.setattr(transport, "TIMEOUT_SECONDS", 1.0)
    ctx = _context(acme, owner, ["calc.hang"])

    started = time.monotonic()
    outcome = tool_call(ctx, "calc.hang", {})

    assert time.monotonic() - started < 5
    assert outcome.status == "error"
    assert "did not answer within 1 s" in outcome.summary
    assert ToolAudit.objects.get(tool="calc.hang").status == "error"


@pytest.mark.usefixtures("in_acme")
def test_a_server_that_went_private_is_refused_at_call_time(
    acme: Workspace, owner: User, calc_server: CalcServer, settings: Any
) -> None:
    _register(acme, owner, calc_server)
    settings.FETCH_ALLOWED_NETWORKS = []  # every request is checked, not only registration
    outcome = tool_call(_context(acme, owner, ["calc.add"]), "calc.add", {"a": 1, "b": 1})

    assert outcome.status == "error"
    assert "private network" in outcome.summary


# --- another workspace -------------------------------------------------------------------------


def test_another_workspace_never_sees_acmes_server_or_its_tools(
    acme: Workspace,
    globex: Workspace,
    owner: User,
    outsider: User,
    calc_server: CalcServer,
    loopback_allowed: None,
) -> None:
    with schema_context(acme.schema_name):
        _register(acme, owner, calc_server)
        assert tool_get("calc.add", acme) is not None
    with schema_context(globex.schema_name):
        assert tool_get("calc.add") is None
        assert not [n for n in tool_names() if n.startswith("calc.")]
        ctx = _context(globex, outsider, ["calc.add"])
        outcome = tool_call(ctx, "calc.add", {"a": 1, "b": 2})
        assert outcome.status == "denied"
        assert "no tool named 'calc.add'" in outcome.summary
    assert tool_get("calc.add", globex) is None  # named explicitly, from any schema
    assert tool_get("calc.add", acme) is not None

    page = host_client("globex.localhost", outsider).get("/agents/").content.decode()
    assert calc_server.url() not in page
    assert 'data-server="calc"' not in page
    assert host_client("acme.localhost", outsider).get("/agents/").status_code == 404


# --- the Agents page ---------------------------------------------------------------------------


def test_an_owner_adds_refreshes_and_removes_a_server_on_the_agents_page(
    acme: Workspace, owner: User, member: User, calc_server: CalcServer, loopback_allowed: None
) -> None:
    client = host_client("acme.localhost", owner)
    added = client.post(
        "/agents/mcp-servers/",
        {"name": "calc", "url": calc_server.url(), "header_name": HEADER, "header_value": SECRET},
    )
    assert added.status_code == 302
    page = client.get("/agents/").content.decode()
    assert 'data-testid="mcp-servers"' in page
    assert "calc.add" in page
    assert SECRET not in page
    assert "…" + SECRET[-4:] in page
    form = client.get("/agents/new/").content.decode()
    assert 'value="calc.add"' in form  # the agent form offers the remote tools

    with schema_context(acme.schema_name):
        server = ExternalMcpServer.objects.get(name="calc")
    member_client = host_client("acme.localhost", member)
    assert 'data-testid="mcp-servers"' not in member_client.get("/agents/").content.decode()
    assert member_client.post(f"/agents/mcp-servers/{server.pk}/refresh/").status_code == 403
    assert member_client.post(f"/agents/mcp-servers/{server.pk}/delete/").status_code == 403

    assert client.post(f"/agents/mcp-servers/{server.pk}/refresh/").status_code == 302
    assert client.post(f"/agents/mcp-servers/{server.pk}/delete/").status_code == 302
    with schema_context(acme.schema_name):
        assert not ExternalMcpServer.objects.exists()


def test_a_refused_url_is_shown_on_the_form_and_nothing_saved(
    acme: Workspace, owner: User, settings: Any
) -> None:
    settings.FETCH_ALLOWED_NETWORKS = []
    response = host_client("acme.localhost", owner).post(
        "/agents/mcp-servers/", {"name": "calc", "url": "http://127.0.0.1:9/mcp"}
    )
    assert response.status_code == 400
    assert "private network" in response.content.decode()
    with schema_context(acme.schema_name):
        assert not ExternalMcpServer.objects.exists()
