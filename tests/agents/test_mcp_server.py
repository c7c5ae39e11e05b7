"""The workspace's tools over MCP, tested the way clients use them: the official MCP Python
client over Streamable HTTP against daphne serving the real ASGI app (a subprocess on this
session's test database and Redis). Rows the server must see are written committed
(`run_committed`) and removed after each test."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from apps.agents.identity import agent_token_issue, agent_token_revoke, agent_token_verify
from apps.agents.models import Agent, Task, ToolAudit
from apps.workspaces.api_keys import SECRET_PREFIX
from apps.workspaces.models import ApiKey, User, Workspace
from tests.asgi_server import AsgiServer, daphne, run_committed
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db

ALLOWED = ["current_time", "list_tasks", "create_task", "update_task"]  # not delete_task


@pytest.fixture(scope="module")
def mcp_server(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AsgiServer]:
    with daphne(log=tmp_path_factory.mktemp("daphne-mcp") / "daphne.log") as server:
        yield server


@dataclass
class Key:
    secret: str
    row: ApiKey


@pytest.fixture
def make_key(django_db_setup: None) -> Iterator[Callable[..., Key]]:
    """`make_key("acme", created_by=user, scopes=[...], revoked_at=...)` → a committed key."""
    made: list[int] = []

    def make(slug: str, **options: Any) -> Key:
        def create() -> Key:
            secret = SECRET_PREFIX + secrets.token_urlsafe(30)
            workspace = Workspace.objects.get(slug=slug)
            options.setdefault("scopes", ["tools"])
            row = ApiKeyFactory.create(workspace=workspace, secret=secret, **options)
            return Key(secret=secret, row=row)

        key = run_committed(create)
        made.append(key.row.pk)
        return key

    yield make
    run_committed(lambda: ApiKey.objects.filter(pk__in=made).delete())


@pytest.fixture
def helper(acme: Workspace) -> Iterator[Agent]:
    """A committed agent `task-helper` in acme allowed ALLOWED; its tasks and audit rows are
    removed afterwards."""

    def create() -> Agent:
        with schema_context(acme.schema_name):
            return Agent.objects.create(name="Task helper", slug="task-helper", tools=ALLOWED)

    agent = run_committed(create)
    yield agent

    def remove() -> None:
        with schema_context(acme.schema_name):
            Task.objects.filter(created_by_agent=agent).delete()
            ToolAudit.objects.filter(agent_id=agent.pk).delete()
            agent.delete()

    run_committed(remove)


@pytest.fixture
def member_key(make_key: Callable[..., Key], member: User) -> Key:
    return make_key("acme", created_by=member)


def connect(
    server: AsgiServer,
    secret: str | None,
    *,
    agent: str | None = "task-helper",
    host: str = "acme",
    mode: str = "auto",
) -> Client:
    """An MCP client on `<host>.localhost/mcp` (connecting to 127.0.0.1 with that Host)."""
    headers = {"host": f"{host}.localhost:{server.port}" if host else f"localhost:{server.port}"}
    if secret is not None:
        headers["authorization"] = f"Bearer {secret}"
    if agent is not None:
        headers["x-agent"] = agent
    http = httpx.AsyncClient(headers=headers, timeout=30, trust_env=False)
    url = f"http://127.0.0.1:{server.port}/mcp"
    return Client(streamable_http_client(url, http_client=http), mode=mode)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def list_tools(client: Client) -> list[Any]:
    async with client:
        return list((await client.list_tools()).tools)


async def call(client: Client, name: str, arguments: dict[str, Any]) -> Any:
    async with client:
        return await client.call_tool(name, arguments)


def refusal(client: Client) -> str:
    """The message of the error the client raises on connecting (inside its task group)."""
    messages = []
    try:
        run(list_tools(client))
    except* MCPError as group:
        messages = [str(error) for error in _leaves(group)]
    assert len(messages) == 1, "the client was not refused"
    return messages[0]


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def audits(acme: Workspace, agent: Agent) -> list[ToolAudit]:
    def load() -> list[ToolAudit]:
        with schema_context(acme.schema_name):
            return list(ToolAudit.objects.filter(agent_id=agent.pk).order_by("pk"))

    return run_committed(load)


# --- listing --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # 2026-07-28 discovery | the handshake
def test_the_agents_allowlist_is_listed_with_schemas_and_annotations(
    mcp_server: AsgiServer, helper: Agent, member_key: Key, mode: str
) -> None:
    client = connect(mcp_server, member_key.secret, mode=mode)
    tools = {tool.name: tool for tool in run(list_tools(client))}

    assert sorted(tools) == sorted(ALLOWED)
    create = tools["create_task"]
    assert create.description == "Create a task in the workspace."
    assert create.input_schema["type"] == "object"
    assert {"title", "notes", "due_on"} <= set(create.input_schema["properties"])
    assert create.input_schema["required"] == ["title"]
    assert tools["current_time"].annotations.read_only_hint is True
    assert create.annotations.read_only_hint is False
    assert create.annotations.destructive_hint is False
    assert create.annotations.open_world_hint is False
    assert create.annotations.title == "Create a task"


def test_the_agent_can_be_named_in_the_query_string(
    mcp_server: AsgiServer, helper: Agent, member_key: Key
) -> None:
    headers = {
        "host": f"acme.localhost:{mcp_server.port}",
        "authorization": f"Bearer {member_key.secret}",
    }
    http = httpx.AsyncClient(headers=headers, timeout=30, trust_env=False)
    url = f"http://127.0.0.1:{mcp_server.port}/mcp?agent=task-helper"
    tools = run(list_tools(Client(streamable_http_client(url, http_client=http))))

    assert sorted(t.name for t in tools) == sorted(ALLOWED)


# --- calling --------------------------------------------------------------------------------


def test_create_task_writes_the_task_and_an_mcp_audit_row(
    mcp_server: AsgiServer, acme: Workspace, member: User, helper: Agent, member_key: Key
) -> None:
    client = connect(mcp_server, member_key.secret)
    result = run(call(client, "create_task", {"title": "Order clay", "due_on": "2027-01-05"}))

    assert result.is_error is False
    assert result.structured_content["title"] == "Order clay"

    def stored() -> Task:
        with schema_context(acme.schema_name):
            return Task.objects.get(pk=result.structured_content["id"])

    task = run_committed(stored)
    assert (task.title, str(task.due_on), task.created_by_id, task.created_by_agent_id) == (
        "Order clay",
        "2027-01-05",
        member.pk,
        helper.pk,
    )
    assert '"Order clay"' in result.content[0].text
    [audit] = audits(acme, helper)
    assert (audit.via, audit.tool, audit.status, audit.on_behalf_of_id) == (
        "mcp",
        "create_task",
        "ok",
        member.pk,
    )
    assert audit.idempotency_key  # a run of its own per request


def test_the_same_call_twice_makes_two_tasks(
    mcp_server: AsgiServer, acme: Workspace, helper: Agent, member_key: Key
) -> None:
    """Each request is a run of its own: a client's repeated call is not answered from the
    first one's stored result."""

    async def twice() -> list[Any]:
        async with connect(mcp_server, member_key.secret) as client:
            return [await client.call_tool("create_task", {"title": "Twice"}) for _ in range(2)]

    first, second = run(twice())

    assert first.structured_content["id"] != second.structured_content["id"]


def test_a_tool_off_the_allowlist_is_a_tool_error(
    mcp_server: AsgiServer, acme: Workspace, helper: Agent, member_key: Key
) -> None:
    result = run(call(connect(mcp_server, member_key.secret), "delete_task", {"id": 1}))

    assert result.is_error is True
    assert result.content[0].text == (
        "The tool 'delete_task' is not enabled for the agent Task helper."
    )
    assert result.structured_content["status"] == "denied"
    [audit] = audits(acme, helper)
    assert (audit.via, audit.status) == ("mcp", "denied")


def test_bad_arguments_are_a_tool_error_with_the_validation_message(
    mcp_server: AsgiServer, acme: Workspace, helper: Agent, member_key: Key
) -> None:
    client = connect(mcp_server, member_key.secret)
    result = run(call(client, "create_task", {"title": "", "colour": "red"}))

    assert result.is_error is True
    text = result.content[0].text
    assert text.startswith("Invalid arguments — title: String should have at least 1 character")
    assert "colour: Extra inputs are not permitted" in text
    assert audits(acme, helper)[0].status == "invalid"


def test_the_agent_never_exceeds_the_key_creators_rights(
    mcp_server: AsgiServer, acme: Workspace, owner: User, helper: Agent, member_key: Key
) -> None:
    """Layer 2: the key acts for its creator, a member, who may not change the owner's task."""

    def owners_task() -> Task:
        with schema_context(acme.schema_name):
            return Task.objects.create(
                title="Owner's", created_by_id=owner.pk, created_by_agent=helper
            )

    task = run_committed(owners_task)
    client = connect(mcp_server, member_key.secret)
    result = run(call(client, "update_task", {"id": task.pk, "status": "done"}))

    assert result.is_error is True
    assert "belongs to someone else" in result.content[0].text
    assert result.structured_content["status"] == "denied"


# --- refusals -------------------------------------------------------------------------------


def test_without_a_key_the_client_is_told_how_to_authenticate(
    mcp_server: AsgiServer, helper: Agent
) -> None:
    assert "You didn't provide an API key" in refusal(connect(mcp_server, None))


def test_a_wrong_key_is_refused(mcp_server: AsgiServer, helper: Agent) -> None:
    wrong = SECRET_PREFIX + secrets.token_urlsafe(30)
    assert refusal(connect(mcp_server, wrong)) == "Incorrect API key provided."


def test_a_revoked_key_is_refused(
    mcp_server: AsgiServer, helper: Agent, make_key: Callable[..., Key], member: User
) -> None:
    key = make_key("acme", created_by=member, revoked_at=timezone.now())
    assert "was revoked" in refusal(connect(mcp_server, key.secret))


def test_a_key_without_the_tools_scope_is_refused(
    mcp_server: AsgiServer, helper: Agent, make_key: Callable[..., Key], member: User
) -> None:
    key = make_key("acme", created_by=member, scopes=["chat", "embeddings"])
    assert "may not use tools" in refusal(connect(mcp_server, key.secret))


def test_another_workspaces_key_is_refused(
    mcp_server: AsgiServer, helper: Agent, make_key: Callable[..., Key], outsider: User
) -> None:
    globex_key = make_key("globex", created_by=outsider)
    message = refusal(connect(mcp_server, globex_key.secret))

    assert "belongs to another workspace" in message
    assert "globex.localhost" in message


def test_a_key_whose_creator_left_the_workspace_is_refused(
    mcp_server: AsgiServer, helper: Agent, make_key: Callable[..., Key], outsider: User
) -> None:
    key = make_key("acme", created_by=outsider)  # outsider is no member of acme
    assert "no longer a member of this workspace" in refusal(connect(mcp_server, key.secret))


def test_a_key_without_a_creator_is_refused(
    mcp_server: AsgiServer, helper: Agent, make_key: Callable[..., Key]
) -> None:
    key = make_key("acme", created_by=None)
    assert "acts for the person who created it" in refusal(connect(mcp_server, key.secret))


def test_without_an_agent_the_message_names_the_header(
    mcp_server: AsgiServer, helper: Agent, member_key: Key
) -> None:
    assert "X-Agent header" in refusal(connect(mcp_server, member_key.secret, agent=None))


def test_an_unknown_agent_is_named_in_the_error(
    mcp_server: AsgiServer, helper: Agent, member_key: Key
) -> None:
    message = refusal(connect(mcp_server, member_key.secret, agent="nobody"))
    assert message.startswith("There is no agent 'nobody' in this workspace")


def test_refusals_are_json_with_their_status(
    mcp_server: AsgiServer, helper: Agent, member_key: Key, make_key: Callable[..., Key]
) -> None:
    """What a plain HTTP client sees: the status, and a JSON-RPC error naming the reason."""
    tools_less = make_key("acme", scopes=["chat"])
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    cases = [
        ("acme", None, "task-helper", 401, "missing_api_key"),
        ("acme", "sk-aisaas-nonsense", "task-helper", 401, "invalid_api_key"),
        ("acme", tools_less.secret, "task-helper", 403, "insufficient_scope"),
        ("acme", member_key.secret, None, 400, "missing_agent"),
        ("acme", member_key.secret, "nobody", 404, "unknown_agent"),
        (None, member_key.secret, "task-helper", 404, "wrong_host"),
    ]
    with httpx.Client(timeout=30, trust_env=False) as http:
        for host, secret, agent, status, reason in cases:
            headers = {
                "host": f"{host}.localhost:{mcp_server.port}" if host else "localhost",
                "accept": "application/json, text/event-stream",
            }
            if secret:
                headers["authorization"] = f"Bearer {secret}"
            if agent:
                headers["x-agent"] = agent
            response = http.post(
                f"http://127.0.0.1:{mcp_server.port}/mcp", json=body, headers=headers
            )
            assert (response.status_code, response.headers["content-type"]) == (
                status,
                "application/json",
            ), (host, secret, agent, response.text)
            assert response.json()["error"]["data"]["reason"] == reason


# --- agent tokens --------------------------------------------------------------------------------


def _token(workspace: Workspace, agent: Agent, user: User, **options: Any) -> str:
    return agent_token_issue(
        workspace=workspace,
        agent_id=agent.pk,
        agent_slug=agent.slug,
        on_behalf_of_id=user.pk,
        run_id=f"run-{secrets.token_hex(4)}",
        **options,
    )


def test_an_agent_runs_token_lists_and_calls_its_tools_without_naming_the_agent(
    mcp_server: AsgiServer, acme: Workspace, member: User, helper: Agent
) -> None:
    token = _token(acme, helper, member)
    names = {tool.name for tool in run(list_tools(connect(mcp_server, token, agent=None)))}
    result = run(call(connect(mcp_server, token, agent=None), "create_task", {"title": "Glaze"}))

    assert names == set(ALLOWED)
    assert result.is_error is False
    [audit] = audits(acme, helper)
    assert (audit.via, audit.status, audit.on_behalf_of_id) == ("mcp", "ok", member.pk)


@pytest.mark.usefixtures("fresh_redis")
def test_agent_tokens_are_refused_when_revoked_foreign_or_for_another_agent(
    mcp_server: AsgiServer, acme: Workspace, globex: Workspace, member: User, helper: Agent
) -> None:
    revoked = _token(acme, helper, member)
    claims = agent_token_verify(revoked, workspace=acme)
    agent_token_revoke(claims.jti, workspace=acme, expires_at=claims.expires_at)
    foreign = _token(globex, helper, member)  # signed for globex, presented on acme's host
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    cases = [
        (revoked, None, 401, "invalid_agent_token"),
        (foreign, None, 401, "invalid_agent_token"),
        (_token(acme, helper, member), "someone-else", 403, "wrong_agent"),
        ("a.b.c", None, 401, "invalid_agent_token"),
    ]
    with httpx.Client(timeout=30, trust_env=False) as http:
        for token, agent, status, reason in cases:
            headers = {
                "host": f"acme.localhost:{mcp_server.port}",
                "accept": "application/json, text/event-stream",
                "authorization": f"Bearer {token}",
            }
            if agent:
                headers["x-agent"] = agent
            response = http.post(
                f"http://127.0.0.1:{mcp_server.port}/mcp", json=body, headers=headers
            )
            assert response.status_code == status, (token[:12], response.text)
            assert response.json()["error"]["data"]["reason"] == reason
