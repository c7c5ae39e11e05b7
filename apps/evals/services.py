"""Production → eval data: sample gateway calls as candidates, promote them to JSONL examples."""

from __future__ import annotations

import json
import uuid
from typing import Any

import structlog
from django.conf import settings
from django.db import DatabaseError, transaction

from apps.llm.prompts import PromptError, PromptLibrary, default_library, variables_from
from apps.traces.masking import mask_value
from apps.traces.models import LlmCallLog, LlmTrace

from .dataset import EvalDataError, parse_example
from .models import CandidateStatus, EvalCandidate

log = structlog.get_logger(__name__)


def sampled(call_id: uuid.UUID, rate: float) -> bool:
    """Whether a call is in the sample: decided by its id, so a replayed batch samples the
    same calls and the share is exact over many calls."""
    return int(call_id.hex[:8], 16) < rate * 0x1_0000_0000


def eval_candidates_sample(
    *, pairs: list[tuple[LlmCallLog, LlmTrace]], rate: float | None = None
) -> int:
    """Store settings.EVALS_SAMPLE_RATE of the successful calls in `pairs` (just written by
    `call_records_flush`, already masked) as eval candidates; return how many.

    Never raises a database error: sampling must not hold up call records.
    """
    rate = settings.EVALS_SAMPLE_RATE if rate is None else rate
    picked = [
        EvalCandidate(
            trace_id=trace.trace_id,
            workspace_id=call.workspace_id,
            feature=call.feature,
            alias=call.alias,
            model=call.model,
            prompt_name=call.prompt_name,
            prompt_version=call.prompt_version,
            # Masked when the trace was built; masked again so a candidate never depends on it.
            messages=mask_value(trace.messages),
            response=mask_value(trace.response),
            created_at=call.created_at,
        )
        for call, trace in pairs
        if rate > 0
        and call.status == "ok"
        and trace.response
        and not call.feature.startswith("evals.")  # eval runs are not production traffic
        and sampled(call.call_id, rate)
    ]
    if not picked:
        return 0
    try:
        with transaction.atomic():
            EvalCandidate.objects.bulk_create(picked, ignore_conflicts=True)
    except DatabaseError as exc:
        log.error("eval_candidates.sample_failed", error=str(exc), count=len(picked))
        return 0
    return len(picked)


def _messages(source: LlmTrace | EvalCandidate) -> list[dict[str, Any]]:
    return [m for m in source.messages if isinstance(m, dict)]


def _last(messages: list[dict[str, Any]], role: str) -> str | None:
    found = [m.get("content") for m in messages if m.get("role") == role]
    return str(found[-1]) if found and found[-1] is not None else None


def eval_example_from(
    source: LlmTrace | EvalCandidate, *, library: PromptLibrary | None = None
) -> dict[str, Any]:
    """An eval example (one eval.jsonl line, as a dict) from a trace or a candidate.

    The prompt's variables are read back from the rendered message; the masked response
    becomes the `reference` a similarity check compares with. A person reviews the line
    (and adds sharper checks) before committing it to `prompts/<name>/eval.jsonl`.
    """
    library = library or default_library()
    if isinstance(source, EvalCandidate):
        name, version = source.prompt_name, source.prompt_version
    else:
        call = LlmCallLog.objects.only("prompt_name", "prompt_version").get(pk=source.call_id)
        name, version = call.prompt_name, call.prompt_version
    if not name:
        raise EvalDataError("This call names no prompt (prompt_name), so it fits no eval set.")
    try:
        prompt = library.load(name, version or None)
    except PromptError as exc:
        raise EvalDataError(f"{exc.message}") from exc
    messages = _messages(source)
    rendered = _last(messages, prompt.role) or ""
    found = variables_from(prompt, rendered)
    if found is None:
        raise EvalDataError(
            f"The trace's {prompt.role} message was not rendered from {name} {prompt.version}."
        )
    checks: list[dict[str, Any]] = []
    if prompt.response_schema is not None:
        checks.append({"type": "json_schema"})
    checks.append({"type": "similarity", "min": 0.5})
    example: dict[str, Any] = {
        "id": f"trace-{source.trace_id.hex[:12]}",
        "vars": found,
        "input": _last(messages, "user") if prompt.role == "system" else None,
        "reference": str(source.response),
        "checks": checks,
        "source": {"trace_id": str(source.trace_id), "prompt_version": prompt.version},
    }
    example = {k: v for k, v in example.items() if v is not None}
    parse_example(example, 0)  # the line must load as it is exported
    return example


def eval_candidate_promote(*, candidate: EvalCandidate) -> str:
    """Mark `candidate` promoted and return its JSONL line."""
    example = eval_example_from(candidate)
    candidate.status = CandidateStatus.PROMOTED
    candidate.example = example
    candidate.save(update_fields=["status", "example"])
    return json.dumps(example, ensure_ascii=False)


def eval_trace_promote(*, trace: LlmTrace) -> str:
    """The JSONL line for any trace (support staff, from admin)."""
    return json.dumps(eval_example_from(trace), ensure_ascii=False)
