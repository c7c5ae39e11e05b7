"""The tool registry: typed Python functions agents may call.

A tool is a function `(ToolContext, Input) -> Output` with pydantic models for both (the JSON
Schema the model sees is generated from `Input`), flags that say what it does (`read_only`,
`writes`, `destructive`, `external`: sends outside the workspace, `spends`: money), a timeout,
an output cap, and `permitted`: whether the person the agent acts for may do this themselves
(the second layer of authorization; the agent's allowlist is the first — runner.py).

Tools register with `@tool(...)` at import (builtin.py); external MCP servers' tools are added
per workspace by the MCP client under `<server>.<tool>` names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from apps.llm.services import Tool

if TYPE_CHECKING:
    from apps.agents.models import Agent
    from apps.workspaces.models import Membership, User, Workspace

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)


@dataclass(frozen=True)
class ToolContext:
    """Who calls, for whom, from where. `run_key` names the run (or chat answer) for the
    idempotency key: the same call at the same step of the same run happens once."""

    workspace: Workspace
    agent: Agent
    user: User  # on_behalf_of: the agent never exceeds this person's rights
    membership: Membership
    run_key: str
    via: str = "chat"  # chat | api | mcp | run | suggestion | undo
    conversation_id: int | None = None
    trace_id: str | None = None
    # Where the agent resumes once held calls are decided: ("chat", answer id), ("run", run
    # id), or ("", "") when nothing waits (an API or MCP client may call again).
    resume: tuple[str, str] = ("", "")
    rationale: str = ""  # the model's words in the step that asked for the calls
    step: int = 0  # the loop step of the call being decided (set by the runner)


def member_may(ctx: ToolContext, args: BaseModel) -> str | None:
    """The default rule: any member of the workspace may (the middleware made them one)."""
    return None


def managers_only(ctx: ToolContext, args: BaseModel) -> str | None:
    if ctx.membership.can_manage:
        return None
    return f"{ctx.user.email} is a member, and only owners and admins may do this."


@dataclass(frozen=True)
class ToolSpec(Generic[In, Out]):
    name: str
    description: str
    input: type[In]
    output: type[Out]
    func: Callable[[ToolContext, In], Out]
    read_only: bool = False
    writes: bool = False
    destructive: bool = False
    external: bool = False
    spends: bool = False
    timeout: float = 10.0  # seconds: the statement timeout of its transaction, fetch timeouts
    max_output_chars: int = 8_000
    permitted: Callable[[ToolContext, In], str | None] = member_may
    label: str = ""  # for people: "Create a task"
    flags_extra: dict[str, Any] = field(default_factory=dict)
    # L2 "act with undo": the inverse, given the call's stored result (the output as JSON);
    # returns what it did, for the audit log (apps/agents/tools/undo.py).
    undo: Callable[[ToolContext, dict[str, Any]], str] | None = None
    # Spending tools: the amount a call would spend, in micro-dollars, shown to approvers.
    amount: Callable[[In], int] | None = None

    @property
    def flags(self) -> list[str]:
        names = ("read_only", "writes", "destructive", "external", "spends")
        return [name for name in names if getattr(self, name)]

    def parameters(self) -> dict[str, Any]:
        schema = self.input.model_json_schema()
        schema.pop("title", None)
        return schema

    def as_llm_tool(self) -> Tool:
        return Tool(name=self.name, description=self.description, parameters=self.parameters())


REGISTRY: dict[str, ToolSpec[Any, Any]] = {}


def tool(
    name: str, *, description: str, input: type[In], output: type[Out], **options: Any
) -> Callable[[Callable[[ToolContext, In], Out]], Callable[[ToolContext, In], Out]]:
    """Register the decorated function as the tool `name`."""

    def register(func: Callable[[ToolContext, In], Out]) -> Callable[[ToolContext, In], Out]:
        if name in REGISTRY:
            raise ValueError(f"Tool {name!r} is registered twice.")
        if "." in name:  # a dot names a remote tool: `<server>.<tool>`
            raise ValueError(f"Tool {name!r}: built-in tool names have no dot.")
        REGISTRY[name] = ToolSpec(
            name=name, description=description, input=input, output=output, func=func, **options
        )
        return func

    return register


def tool_get(name: str, workspace: Workspace | None = None) -> ToolSpec[Any, Any] | None:
    """The tool `name`: a built-in one, or `<server>.<tool>` of one of the workspace's external
    MCP servers (`workspace`, or the current schema's when None)."""
    from . import builtin  # noqa: F401  (registers the built-in tools)

    if "." not in name:
        return REGISTRY.get(name)
    from apps.agents.mcp_remote.tools import remote_tool_get

    return remote_tool_get(name, workspace=workspace)


def tool_names(workspace: Workspace | None = None) -> list[str]:
    """The built-in tools, then the workspace's remote ones (see `tool_get`)."""
    from apps.agents.mcp_remote.tools import remote_tool_names

    from . import builtin  # noqa: F401

    return sorted(REGISTRY) + remote_tool_names(workspace=workspace)


def tools_for(names: list[str], workspace: Workspace | None = None) -> list[ToolSpec[Any, Any]]:
    """The known tools among `names`, in the given order (unknown names skipped)."""
    found = (tool_get(name, workspace) for name in names)
    return [spec for spec in found if spec is not None]
