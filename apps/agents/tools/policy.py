"""The approval seam: after both layers of authorization allow a call, the autonomy policy
decides whether it runs now, waits for a person, is only suggested, or was refused by one
(docs/architecture.md, "Approvals").

`apps/agents/autonomy.py` plugs the workspace's policy in at ready() with `policy_plug`
(it asks `apps.approvals`); without it every authorized call runs (L5, audit only). A held
call carries its pending action's id: the runner audits it as awaiting approval and tells the
model; once decided, the answer or run resumes and calls again with the same canonical
arguments — bound to them by hash, so a different call needs its own approval — and `claim`
(run inside the tool's transaction) lets the approved call run exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry import ToolContext, ToolSpec


@dataclass(frozen=True, slots=True)
class Decision:
    run: bool  # True: run now; False: not now (waiting, suggested or refused)
    approval_id: int | None = None
    message: str = ""  # for the model and the audit row when not run
    level: int = 5  # the autonomy level the call was decided at (L1–L5)
    suggested: bool = False  # L1: shown to the person as a ready-to-run action
    refused: bool = False  # a person rejected it, or nobody approved it in time
    # Run inside the tool's transaction before it runs: False → it ran already (approved once).
    claim: Callable[[], bool] | None = None


RUN = Decision(run=True)
Policy = Callable[["ToolContext", "ToolSpec[Any, Any]", dict[str, Any]], Decision]


def _autonomous(ctx: ToolContext, spec: ToolSpec[Any, Any], args: dict[str, Any]) -> Decision:
    return RUN


_policy: Policy = _autonomous


def policy_plug(policy: Policy | None) -> None:
    """Install the workspace autonomy policy (None restores the default: run every call)."""
    global _policy
    _policy = policy or _autonomous


def policy_decide(ctx: ToolContext, spec: ToolSpec[Any, Any], args: dict[str, Any]) -> Decision:
    return _policy(ctx, spec, args)
