"""After the call, however it ended: meter its cost, then settle the budget reservation,
store the answer in the exact cache, debit credits and record the call."""

from __future__ import annotations

from ..budget import BudgetStore
from ..cache import ExactCache
from ..call import Call, measure
from ..context import CallSink, DebitPort, credit_charge
from ..errors import CREDIT_BALANCE
from ..pricing import NominalRate, cost_micros
from .record import call_record


class Settlement:
    """The after-call stages, over the ports a finished call writes to."""

    def __init__(
        self,
        *,
        budget: BudgetStore,
        cache: ExactCache,
        debit: DebitPort,
        sink: CallSink,
        nominal: NominalRate,
    ):
        self.budget = budget
        self.cache = cache
        self.debit = debit
        self.sink = sink
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
        await self.budget.settle(call.reservation, actual)

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
            await self.cache.set(call.key, call.response)

    async def debit_credits(self, call: Call) -> None:
        # Every call goes to the port: it alone knows what (if anything) the ledger charges.
        await self.debit.debit(call_record(call))

    async def record_call(self, call: Call) -> None:
        await self.sink.record(call_record(call))
