"""An agent's system prompt: the versioned prompt file it names, rendered for the workspace, and
the instructions workspace admins wrote for it (data from the database, after the file's rules).
"""

from __future__ import annotations

from apps.llm.prompts import RenderedPrompt, render_prompt
from apps.workspaces.models import Workspace

from .models import Agent

INSTRUCTIONS_HEADER = "Instructions for this agent from the workspace's admins:"


def agent_system_prompt(
    *, workspace: Workspace, agent: Agent, prompt: str | None = None, **variables: str
) -> tuple[RenderedPrompt, str]:
    """The rendered prompt file (`prompt`, else the agent's) and the full system text."""
    rendered = render_prompt(
        prompt or agent.system_prompt,
        {"workspace_name": workspace.name, "agent_name": agent.name, **variables},
    )
    text = rendered.text
    if agent.instructions.strip():
        text = f"{text}\n\n{INSTRUCTIONS_HEADER}\n{agent.instructions.strip()}"
    return rendered, text
