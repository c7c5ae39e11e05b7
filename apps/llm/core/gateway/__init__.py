"""The gateway: every model call runs this pipeline, in this order.

    before the call:  validate → resolve alias → safety pre-check
                      → together: reserve budget, look up the exact cache → use a cache hit
    the call:         primary, one retry, one fallback (only before the first streamed token)
    after the call:   meter cost → together: settle budget, store in cache, debit credits, record

The "after" stages run whatever happened — success, error, cancellation — so no reservation
outlives its call and every call leaves exactly one record, even when Redis drops then (durable).
Redis failing before the call is a 503 naming it (`ServiceUnavailableError`). Stages grouped in `Together` don't
depend on each other and run concurrently; with the batching Redis client their commands share
one round trip, so a call costs two (the order still holds: a hit is used only once the
reservation is granted). Plain Python: no Django here (docs/architecture.md, "The gateway").

Where each part lives:
    pipeline    the `Gateway`: its ports, the two stage lists, the entry points
    before      the before-call stages and the worst case a reservation holds
    attempts    the call: retry, fallback and the circuit breaker against the providers
    structured  JSON replies validated, with one corrective retry
    streaming   a streamed call: replay of a cache hit, commit at the first event, truncation
    after       the after-call stages: metering and settlement
    durable     the after-call writes made durable: retried, else kept in an outbox and replayed
    record      the `CallRecord` each call leaves
    stages      what a stage is; `Together`
"""

from .pipeline import Gateway, GatewaySettings
from .stages import Stage, Together

__all__ = ["Gateway", "GatewaySettings", "Stage", "Together"]
