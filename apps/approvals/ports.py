"""What happens once an agent's held actions are decided: plugged in by `agents` at ready().

`resume_plug(kind, hook)`: `hook(resume_ref)` runs after the commit of the decision that left
no action of `(kind, resume_ref)` pending — a chat answer or a run continues from its stored
state (a Celery task; nothing waits meanwhile). The `self` hook gets an approved action's id
when no agent waits for it (an L1 suggestion its person runs, a call held for an API or MCP
client): it runs the action's calls. Plugging is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

ResumeHook = Callable[[str], None]

_hooks: dict[str, ResumeHook] = {}


def resume_plug(kind: str, hook: ResumeHook) -> None:
    _hooks[kind] = hook


def resume(kind: str, ref: str) -> None:
    hook = _hooks.get(kind)
    if hook is None:
        if kind:
            log.warning("approvals.no_resume_hook", kind=kind, ref=ref)
        return
    hook(ref)
