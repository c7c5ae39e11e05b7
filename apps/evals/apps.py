"""Evals. Installed in SHARED_APPS (public schema).

Eval runs and their results belong to the platform (CI, prompt authors), not to a workspace;
eval candidates are sampled from llm_call_log / llm_trace, which live in public too. Candidates
carry `workspace_id`, and every query on them filters on it or is staff-only (admin).
"""

from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "apps.evals"
    verbose_name = "Evals"

    def ready(self) -> None:
        # Eval candidates are masked copies of production calls: sampled as the trace store
        # stores calls, and deleted with its masked tier (docs/architecture.md, "Layers and
        # ports").
        from apps.traces.ports import (
            MaskedCopy,
            masked_copy_register,
            stored_calls_listener_register,
        )

        from .models import EvalCandidate
        from .services import eval_candidates_sample

        stored_calls_listener_register(
            "evals.candidates", lambda pairs: eval_candidates_sample(pairs=pairs)
        )
        masked_copy_register(
            MaskedCopy(
                name="candidates",
                label="eval candidates",
                rows=lambda workspace: EvalCandidate.objects.filter(workspace=workspace),
            )
        )
