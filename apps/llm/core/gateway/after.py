"""After the call, however it ended: meter its cost, then settle the budget reservation,
store the answer in the exact cache, debit credits and record the call. The settle, the debit
and the record are durable (durable.py); the cache is only a cache, so a failed store is let go."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from ..cache import ExactCache
from ..call import Call, measure
from ..context import credit_charge
from ..errors import CREDIT_BALANCE
from ..pricing import NominalRate, cost_micros
from .durable import DurableWrites
from .record import call_record

log = logging.getLogger(__name__)


class Settlement:
    """The after-call stages, over the ports a finished call writes to."""

    def __init__(self, *, cache: ExactCache, durable: DurableWrites, nominal: NominalRate):
        self.cache = cache
        self.durable = durable
        self.nominal = nominal

    async def meter_cost(self, call: Call) -> None:
        if call.route is None or call.cached:
            call.cost = 0
            return
        call.cost = cost_micros(
            call.route.provider, call.route.model, call.usage, nominal=self.nominal
        )

    async def settle_budget(self, call: Call) -> None:
        if call.reservation is None:
            return
        counted = call.status != "error" or call.usage.total_tokens > 0
        actual = {
            scope.name: measure(scope, call.usage, call.cost, counted)
            for scope in call.reservation.scopes
        }
        credit = call.scope.credit
        if credit is not None:
            # What the ledger will debit for this call: pending until that debit is posted.
            actual[CREDIT_BALANCE] = credit_charge(
                call_record(call), byok_fee=credit.byok_fee_micros
            )
        await self.durable.settle(call.reservation, actual, call_record(call))

    async def store_exact_cache(self, call: Call) -> None:
        # The key names the primary model: a fallback's answer stored under it would be
        # served for 24 h as the primary's, with another model's words.
        if (
            call.key
            and call.status == "ok"
            and not call.cached
            and not call.fallback_used
            and call.response is not None
        ):
            try:
                await self.cache.set(call.key, call.response)
            except RedisError as exc:
                log.warning("exact_cache.store_failed call_id=%s error=%r", call.call_id, exc)

    async def debit_credits(self, call: Call) -> None:
        # Every call goes to the port: it alone knows what (if anything) the ledger charges.
        await self.durable.debit_credits(call_record(call))

    async def record_call(self, call: Call) -> None:
        await self.durable.record_call(call_record(call))
