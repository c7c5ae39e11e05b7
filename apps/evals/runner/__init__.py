"""`evals run`: each prompt version on its eval set, through the gateway, scored and stored.

Every model call goes through the gateway (`allm_chat` / `allm_embed`) in one workspace, so
evals are budgeted, metered and traced like any feature (features `evals.<prompt>`,
`evals.judge`, `evals.similarity`). Examples run concurrently; results are stored once all
of a version's examples are scored.

- run.py: the workspace and the loop over prompts and versions (`evals_run`).
- ports.py: the calls a prompt version makes, and the scorers' calls (`GatewayPorts`).
- examples.py: one example rendered, answered and scored; a version's examples concurrently.
- store.py: a version's outcomes summarised into an `EvalRun` and its `EvalResult`s.
"""

from .ports import GatewayPorts
from .run import eval_workspace, evals_run

__all__ = ["GatewayPorts", "eval_workspace", "evals_run"]
