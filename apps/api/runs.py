"""`/v1/agents/{slug}/runs`: API clients start an agent on a task in the background (202 and
the run's id), read its status and steps, cancel it, and follow it as server-sent events.
Keys need the `agents` scope; the agent acts for the key's creator. Every call runs in the
key's workspace schema: another workspace's run id is "not found". Each route calls one
runs service (apps/agents/runs)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django_tenants.utils import tenant_context

from apps.agents.models import Agent, AgentRun, RunEvent
from apps.agents.runs.services import run_cancel, run_start
from apps.common.errors import ApplicationError
from apps.workspaces.models import ApiKey, Membership
from apps.workspaces.selectors import membership_get

from . import sse, wire
from .admission import principal_for
from .principal import in_db
from .request import Request

T = TypeVar("T")

SCOPE = "agents"
FIELDS = {"task", "max_steps", "max_cost_micros", "outcome"}
POLL_SECONDS = 0.5


async def _key(request: Request) -> ApiKey:
    principal = await principal_for(request, need=SCOPE, feature="api.runs", counted=True)
    return principal.api_key


async def _in_workspace(api_key: ApiKey, work: Callable[[], T]) -> T:
    def entered() -> T:
        with tenant_context(api_key.workspace):
            return work()

    return await in_db(entered)


def _membership(api_key: ApiKey) -> Membership:
    user = api_key.created_by
    membership = membership_get(workspace=api_key.workspace, user=user) if user else None
    if membership is None:
        raise wire.ApiError(
            403,
            "This API key's creator is no longer a member of the workspace, so agents cannot "
            "act for it; create a new key.",
            code="permission_denied",
        )
    return membership


def _agent(slug: str) -> Agent:
    agent = Agent.objects.filter(slug=slug).first() if slug else None
    if agent is None:
        raise wire.ApiError(
            404,
            f"There is no agent {slug!r} in this workspace.",
            code="agent_not_found",
            param="slug",
        )
    return agent


def _run(agent: Agent, text: str, membership: Membership) -> AgentRun:
    """The run (of this agent, visible to the key's creator: theirs, or any for managers)."""
    missing = wire.ApiError(
        404, f"No run {text!r} of this agent.", code="run_not_found", param="run_id"
    )
    try:
        key = uuid.UUID(text)
    except ValueError:
        raise missing from None
    runs = AgentRun.objects.select_related("agent").filter(agent=agent, public_id=key)
    if not membership.can_manage:
        runs = runs.filter(started_by_id=membership.user_id)
    run = runs.first()
    if run is None:
        raise wire.ApiError(
            404, f"No run {text!r} of this agent.", code="run_not_found", param="run_id"
        )
    return run


def _body(raw: bytes) -> dict[str, Any]:
    body = wire.parse_json(raw)
    if not isinstance(body, dict):
        raise wire.ApiError(400, "The body must be a JSON object.", code="invalid_request")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise wire.ApiError(
            400,
            f"Unknown field {unknown[0]!r}; use {', '.join(sorted(FIELDS))}.",
            code="unknown_parameter",
            param=unknown[0],
        )
    outcome = body.get("outcome")
    if outcome is not None and (
        not isinstance(outcome, dict) or set(outcome) - {"kind", "price_micros"}
    ):
        raise wire.ApiError(
            400, 'outcome must be {"kind": str, "price_micros": int}.', param="outcome"
        )
    return body


def run_json(run: AgentRun, events: list[RunEvent] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(run.public_id),
        "object": "agent.run",
        "agent": run.agent.slug,
        "status": run.status,
        "task": run.task,
        "step": run.step,
        "max_steps": run.max_steps,
        "cost_micros": run.cost_micros,
        "max_cost_micros": run.max_cost_micros,
        "usage": {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens},
        "result": run.result or None,
        "error": run.error or None,
        "cancel_requested": run.cancel_requested_at is not None,
        "created_at": int(run.created_at.timestamp()),
        "finished_at": int(run.finished_at.timestamp()) if run.finished_at else None,
    }
    if events is not None:
        data["steps"] = [event_json(e) for e in events]
    return data


def event_json(event: RunEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "step": event.step,
        "kind": event.kind,
        "name": event.name or None,
        "status": event.status,
        "summary": event.summary,
        "cost_micros": event.cost_micros,
        "created_at": int(event.created_at.timestamp()),
    }


async def create_run(request: Request) -> None:
    raw = await request.body()
    api_key = await _key(request)
    body = _body(raw)
    slug = request.path_params["slug"]

    def start() -> AgentRun:
        membership = _membership(api_key)
        outcome = body.get("outcome") or {}
        try:
            return run_start(
                workspace=api_key.workspace,
                membership=membership,
                agent=_agent(slug),
                task=body.get("task"),
                max_steps=body.get("max_steps"),
                max_cost_micros=body.get("max_cost_micros"),
                via="api",
                api_key_id=api_key.pk,
                outcome_kind=str(outcome.get("kind") or ""),
                outcome_price_micros=outcome.get("price_micros"),
            )
        except ApplicationError as exc:
            raise wire.ApiError(400, exc.message, code="invalid_request", param=exc.field) from None

    run = await _in_workspace(api_key, start)
    await request.json(202, run_json(run), {"location": f"/v1/agents/{slug}/runs/{run.public_id}"})


async def get_run(request: Request) -> None:
    api_key = await _key(request)
    params = request.path_params

    def read() -> dict[str, Any]:
        run = _run(_agent(params["slug"]), params["run_id"], _membership(api_key))
        return run_json(run, list(run.events.all()[:1000]))

    await request.json(200, await _in_workspace(api_key, read))


async def cancel_run(request: Request) -> None:
    api_key = await _key(request)
    params = request.path_params

    def cancel() -> dict[str, Any]:
        membership = _membership(api_key)
        run = _run(_agent(params["slug"]), params["run_id"], membership)
        try:
            run = run_cancel(membership=membership, run=run)
        except ApplicationError as exc:
            raise wire.ApiError(409, exc.message, code="run_not_active", param="run_id") from None
        return run_json(run)

    await request.json(202, await _in_workspace(api_key, cancel))


async def run_events(request: Request) -> None:
    """The run's steps as server-sent events (`event: step`), then `event: end` with the run
    once it is no longer active. Polls the stored timeline; a client may reconnect any time."""
    api_key = await _key(request)
    params = request.path_params

    def find() -> AgentRun:
        return _run(_agent(params["slug"]), params["run_id"], _membership(api_key))

    run = await _in_workspace(api_key, find)
    await sse.start(request)
    seen = 0
    while True:

        def fresh(after: int = seen) -> tuple[AgentRun, list[RunEvent]]:
            current = AgentRun.objects.select_related("agent").get(pk=run.pk)
            return current, list(current.events.filter(pk__gt=after)[:200])

        current, events = await _in_workspace(api_key, fresh)
        for event in events:
            await sse.send(request, event_json(event), event="step")
            seen = event.pk
        if not current.is_active and not events:
            await sse.send(request, run_json(current), event="end")
            break
        await asyncio.sleep(POLL_SECONDS)
    await request.write(b"", more=False)
