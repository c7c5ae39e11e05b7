"""Production → eval data: sampled gateway calls become masked candidates; support staff
promote a candidate or any trace to an eval.jsonl line from admin."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from apps.evals.dataset import EvalDataError, parse_example
from apps.evals.models import CandidateStatus, EvalCandidate
from apps.evals.services import eval_candidate_promote, eval_trace_promote, sampled
from apps.llm.core.types import ChatRequest, Message
from apps.llm.prompts import render_prompt
from apps.llm.services import llm_chat
from apps.traces.models import LlmTrace
from apps.traces.services import call_records_flush
from apps.workspaces.models import User, Workspace
from tests.factories import UserFactory
from tests.gateway_support import gateway_settings, unique, user_actor

pytestmark = pytest.mark.django_db

EMAIL = "jane.doe@example.com"


@pytest.fixture(autouse=True)
def _offline_glue() -> Iterator[None]:
    with gateway_settings():
        yield


def chat_call(workspace: Workspace, user: User, question: str) -> str:
    """A chat call with the chat.system prompt, as the product makes it; returns the trace id."""
    prompt = render_prompt("chat.system", {"workspace_name": "Acme", "agent_name": "Assistant"})
    request = ChatRequest(
        alias="smart",
        messages=(Message("system", prompt.text), Message("user", question)),
        **prompt.request_fields(),
    )
    reply = llm_chat(workspace=workspace, actor=user_actor(user), feature="chat", request=request)
    call_records_flush()
    return reply.trace_id


def test_sampling_is_by_call_id_and_about_the_configured_share():
    ids = [uuid.uuid4() for _ in range(20000)]
    share = sum(sampled(i, 0.01) for i in ids) / len(ids)
    assert 0.005 < share < 0.015
    assert all(sampled(i, 1.0) for i in ids[:100])
    assert not any(sampled(i, 0.0) for i in ids[:100])
    assert sampled(ids[0], 0.3) == sampled(ids[0], 0.3)


def test_a_sampled_call_becomes_a_masked_candidate(eval_ws: Workspace, owner: User, settings):
    settings.EVALS_SAMPLE_RATE = 1.0
    trace_id = chat_call(eval_ws, owner, unique(f"My email is {EMAIL}. How do credits work?"))
    candidate = EvalCandidate.objects.get(trace_id=trace_id)
    assert (candidate.workspace, candidate.prompt_name, candidate.prompt_version) == (
        eval_ws,
        "chat.system",
        "v1",
    )
    assert candidate.status == CandidateStatus.NEW
    assert candidate.response
    stored = json.dumps(candidate.messages) + candidate.response
    assert EMAIL not in stored
    assert "[EMAIL]" in stored


def test_no_candidates_when_the_rate_is_zero(eval_ws: Workspace, owner: User, settings):
    settings.EVALS_SAMPLE_RATE = 0.0
    trace_id = chat_call(eval_ws, owner, unique("How do credits work?"))
    assert not EvalCandidate.objects.filter(trace_id=trace_id).exists()


def test_promoting_a_trace_exports_a_loadable_jsonl_line(eval_ws: Workspace, owner: User, settings):
    settings.EVALS_SAMPLE_RATE = 0.0
    question = unique(f"Write to {EMAIL}: how do credits work?")
    trace = LlmTrace.objects.get(trace_id=chat_call(eval_ws, owner, question))
    line = eval_trace_promote(trace=trace)
    example = json.loads(line)
    assert example["vars"] == {"workspace_name": "Acme", "agent_name": "Assistant"}
    assert example["input"].startswith("Write to [EMAIL]: how do credits work?")
    assert example["reference"] == trace.response
    assert example["source"]["trace_id"] == str(trace.trace_id)
    assert EMAIL not in line
    parsed = parse_example(example, 1)
    render_prompt("chat.system", parsed.vars)  # the line fits the prompt it came from


def test_promoting_a_candidate_marks_it(eval_ws: Workspace, owner: User, settings):
    settings.EVALS_SAMPLE_RATE = 1.0
    candidate = EvalCandidate.objects.get(
        trace_id=chat_call(eval_ws, owner, unique("Hello there, what is RAG?"))
    )
    line = eval_candidate_promote(candidate=candidate)
    candidate.refresh_from_db()
    assert candidate.status == CandidateStatus.PROMOTED
    assert candidate.example == json.loads(line)


def test_a_trace_without_a_prompt_cannot_be_promoted(eval_ws: Workspace, owner: User):
    reply = llm_chat(
        workspace=eval_ws,
        actor=user_actor(owner),
        feature="chat",
        request=ChatRequest(alias="smart", messages=(Message("user", unique("plain")),)),
    )
    call_records_flush()
    with pytest.raises(EvalDataError, match="names no prompt"):
        eval_trace_promote(trace=LlmTrace.objects.get(trace_id=reply.trace_id))


def staff_client(*codenames: str) -> Client:
    """A support staff member (the trace admin opens to the `support` group) with `codenames`."""
    user = UserFactory.create(is_staff=True)
    user.groups.add(Group.objects.get(name="support"))
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def test_support_staff_promote_from_admin(eval_ws: Workspace, owner: User, settings):
    settings.EVALS_SAMPLE_RATE = 1.0
    trace_id = chat_call(eval_ws, owner, unique("How do I invite a colleague?"))
    candidate = EvalCandidate.objects.get(trace_id=trace_id)
    client = staff_client(
        "view_evalcandidate", "change_evalcandidate", "view_llmtrace", "change_llmtrace"
    )
    response = client.post(
        "/admin/evals/evalcandidate/",
        {"action": "promote_candidates", "_selected_action": [candidate.pk]},
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert json.loads(response.content)["id"] == f"trace-{candidate.trace_id.hex[:12]}"
    trace = LlmTrace.objects.get(trace_id=trace_id)
    response = client.post(
        "/admin/traces/llmtrace/", {"action": "promote_traces", "_selected_action": [trace.pk]}
    )
    assert response.status_code == 200
    assert json.loads(response.content)["vars"]["workspace_name"] == "Acme"
