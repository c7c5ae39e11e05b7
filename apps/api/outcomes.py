"""`/v1/outcomes`: API clients record billable outcomes ("ticket resolved") and read their
workspace's outcomes back. Keys need the `outcomes` scope.

Recording goes through the billing service (idempotent per workspace and `external_id`: 201 when
this request created the outcome, 200 when it was recorded before with the same kind and price,
409 when with another). Every read is filtered by the key's workspace: another workspace's
outcome is "not found", never "forbidden". No model is called, so each request is counted against
the key's per-minute rate limit on its own (`admission.principal_for`), as /v1/models does.
"""

from __future__ import annotations

from django.http import Http404

from apps.billing.models import Outcome
from apps.billing.outcomes import outcome_record_or_get
from apps.billing.selectors import access_outcome, outcome_page
from apps.traces.selectors import trace_id_check
from apps.workspaces.models import ApiKey

from . import wire
from .admission import principal_for
from .principal import in_db
from .request import Request

SCOPE = "outcomes"
# The service names the price in micro-dollars; the API takes it in dollars.
_PARAMS = {"price_micros": "price_usd"}


async def _api_key(request: Request) -> ApiKey:
    principal = await principal_for(request, need=SCOPE, feature="api.outcomes", counted=True)
    return principal.api_key


async def create_outcome(request: Request) -> None:
    raw = await request.body()
    api_key = await _api_key(request)
    body = wire.outcome_body(wire.parse_json(raw, exact_numbers=True))
    price_micros = wire.outcome_price_micros(body)

    def record() -> tuple[Outcome, bool]:
        trace_id_check(workspace=api_key.workspace, trace_id=body.trace_id)
        return outcome_record_or_get(
            workspace=api_key.workspace,
            kind=body.kind,
            price_micros=price_micros,
            external_id=body.external_id,
            trace_id=body.trace_id,
            run_id=body.run_id or "",
        )

    outcome, created = await in_db(record, params=_PARAMS)
    await request.json(201 if created else 200, wire.outcome(outcome))


async def list_outcomes(request: Request) -> None:
    api_key = await _api_key(request)
    query = wire.outcome_query(request.scope["query_string"])
    rows, has_more = await in_db(
        lambda: outcome_page(
            workspace=api_key.workspace,
            limit=query.limit,
            status=query.status,
            external_id=query.external_id,
            after_id=query.after,
        )
    )
    await request.json(200, wire.outcome_list(rows, has_more=has_more))


async def get_outcome(request: Request) -> None:
    api_key = await _api_key(request)
    text = request.path_params["outcome_id"]
    outcome_id = wire.outcome_id(text)

    def find() -> Outcome | None:
        if outcome_id is None:
            return None
        try:
            return access_outcome(workspace=api_key.workspace, outcome_id=outcome_id)
        except Http404:
            return None

    outcome = await in_db(find)
    if outcome is None:
        raise wire.ApiError(
            404,
            f"No outcome {text} in this workspace.",
            code="outcome_not_found",
            param="outcome_id",
        )
    await request.json(200, wire.outcome(outcome))
