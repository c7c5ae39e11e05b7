"""Agents through the API: `/v1/chat/completions` with `model: "agent:<slug>"` runs the agent
loop server-side — our tools, executed by us under the agent's allowlist, the key creator's own
rights, the audit log and the agent's limits — for keys with the `agents` scope.

`agent_turn` prepares one completion (sync, the ORM): the agent, the person it acts for (the
key's creator, who must still be a member), the system prompt and the client's messages. The
API edge runs `apps.agents.loop.agent_loop` with it and folds the events into OpenAI's shapes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from django_tenants.utils import schema_context

from apps.common.errors import ApplicationError
from apps.llm.services import ChatRequest, Message, Scope
from apps.workspaces.models import ApiKey, Workspace
from apps.workspaces.selectors import membership_get

from .loop import agent_scopes
from .models import Agent
from .prompting import agent_system_prompt
from .tools.registry import ToolContext, ToolSpec, tools_for

PREFIX = "agent:"


def is_agent_model(model: str) -> bool:
    return model.startswith(PREFIX)


@dataclass(frozen=True)
class AgentTurn:
    ctx: ToolContext
    tools: list[ToolSpec[Any, Any]]
    max_steps: int
    scopes: tuple[Scope, ...]
    request: ChatRequest  # with the agent's alias, system prompt and the client's messages


def agent_turn(
    *, workspace: Workspace, api_key: ApiKey, model: str, request: ChatRequest
) -> AgentTurn:
    """The completion `request` (the client's messages) as the agent `model` names runs it.
    ApplicationError (field "model") for an unknown or paused agent, client-side tools, or a
    key whose creator can no longer act in the workspace."""
    slug = model[len(PREFIX) :].strip()
    if request.tools:
        raise ApplicationError(
            f"The agent {slug!r} runs its own tools; send no `tools` with an agent model.",
            field="tools",
        )
    user = api_key.created_by
    membership = membership_get(workspace=workspace, user=user) if user is not None else None
    if user is None or membership is None:
        raise ApplicationError(
            "This API key's creator is no longer a member of the workspace, so agents cannot "
            "act for it; create a new key.",
            field="model",
        )
    with schema_context(workspace.schema_name):
        agent = Agent.objects.filter(slug=slug).first() if slug else None
        if agent is None:
            names = ", ".join(f"agent:{s}" for s in agent_slugs(workspace=workspace)) or "none"
            raise ApplicationError(
                f"There is no agent {model!r} in this workspace; available: {names}.",
                field="model",
            )
        if not agent.is_active:
            raise ApplicationError(
                f"The agent {model!r} is paused by a workspace admin.", field="model"
            )
        _, system = agent_system_prompt(workspace=workspace, agent=agent)
        run_key = f"api-{uuid.uuid4().hex}"
        ctx = ToolContext(
            workspace=workspace,
            agent=agent,
            user=user,
            membership=membership,
            run_key=run_key,
            via="api",
            resume=("self", ""),  # nothing waits: an approved call runs on its own
        )
        client = [m for m in request.messages if m.role != "system"]
        extra = [m.content for m in request.messages if m.role == "system" and m.content]
        if extra:  # the client's own system text comes after ours, as context
            system += "\n\nContext from the API client:\n" + "\n".join(extra)
        return AgentTurn(
            ctx=ctx,
            tools=tools_for(list(agent.tools or []), workspace=workspace),
            max_steps=agent.max_steps if agent.tools else 1,
            scopes=agent_scopes(agent, schema=workspace.schema_name, run_key=run_key),
            request=replace(
                request,
                alias=agent.alias,
                messages=(Message("system", system), *client),
                tools=(),
                tool_choice=None,
                cache=False,  # tools act on live data
            ),
        )


def agent_slugs(*, workspace: Workspace) -> Sequence[str]:
    """The workspace's active agents' slugs, for /v1/models (as `agent:<slug>`)."""
    with schema_context(workspace.schema_name):
        return list(
            Agent.objects.filter(status=Agent.Status.ACTIVE)
            .exclude(slug="")
            .order_by("slug")
            .values_list("slug", flat=True)
        )
