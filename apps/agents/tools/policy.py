"""The approval seam: after both layers of authorization allow a call, the autonomy policy
decides whether it runs now or waits for a person (docs/architecture.md, "Approvals").

The approvals app (planned, below `agents` in the layers) plugs its decision in at ready()
with `policy_plug`; until then every authorized call runs (the agents' own default, L5
"autonomous, audit only"). A decision that asks for approval carries the pending action's id:
the runner audits the call as awaiting approval and tells the model it is waiting, and the
approval's resume hook runs it later — bound to the same canonical arguments (their hash is
the idempotency key's input), so a different call needs its own approval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry import ToolContext, ToolSpec


@dataclass(frozen=True, slots=True)
class Decision:
    run: bool  # True: run now; False: wait for approval
    approval_id: int | None = None
    message: str = ""  # for the model and the audit row when waiting


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
