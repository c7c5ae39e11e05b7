"""Usage → cost in integer micro-dollars, from genai-prices (cache read/write tokens included).

The local offline model has no market price; it is charged a configurable nominal rate so that
budgets, credits and the paywall behave offline exactly as they do with real providers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

import genai_prices
from genai_prices import data_snapshot
from genai_prices.types import ModelPrice, TieredPrices

from .routing import LOCAL
from .types import Usage

MICROS_PER_DOLLAR = Decimal(1_000_000)
PRICE_DATA_VERSION = f"genai-prices {genai_prices.__version__}"


@dataclass(frozen=True, slots=True)
class NominalRate:
    """Micro-dollars per million tokens for models genai-prices does not know (local, custom)."""

    input_per_mtok: int = 1_000_000  # $1 / M input tokens
    output_per_mtok: int = 4_000_000  # $4 / M output tokens


def _to_micros(dollars: Decimal) -> int:
    return int((dollars * MICROS_PER_DOLLAR).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _nominal(usage: Usage, rate: NominalRate) -> int:
    total = Decimal(
        usage.input_tokens * rate.input_per_mtok + usage.output_tokens * rate.output_per_mtok
    )
    return int((total / Decimal(1_000_000)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@lru_cache(maxsize=256)
def _known(provider: str, model: str) -> bool:
    try:
        genai_prices.calc_price(
            genai_prices.Usage(input_tokens=1), model_ref=model, provider_id=_vendor(provider)
        )
    except LookupError:
        return False
    return True


def _vendor(provider: str) -> str:
    # An OpenAI-compatible server runs someone's model; genai-prices may still know it by name.
    return "openai" if provider == "openai_compatible" else provider


def cost_micros(
    provider: str, model: str, usage: Usage, *, nominal: NominalRate = NominalRate()
) -> int:
    """What `usage` on `model` costs, in integer micro-dollars (half-up rounding, once)."""
    if provider == LOCAL or not _known(provider, model):
        return _nominal(usage, nominal)
    vendor, now = _vendor(provider), datetime.now(tz=UTC)
    rates = _flat_rates(vendor, model, now)
    if rates is None:
        return _to_micros(_genai_dollars(vendor, model, usage, now))
    return _to_micros(rates.price(usage))


def _genai_dollars(vendor: str, model: str, usage: Usage, when: datetime) -> Decimal:
    price = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens or None,
            cache_write_tokens=usage.cache_write_tokens or None,
        ),
        model_ref=model,
        provider_id=vendor,
        genai_request_timestamp=when,
    )
    return Decimal(price.total_price)


@dataclass(frozen=True, slots=True)
class _FlatRates:
    """A flat genai-prices price as dollars per call and per token of each usage field."""

    base: Decimal
    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal

    def price(self, usage: Usage) -> Decimal:
        return (
            self.base
            + self.input * usage.input_tokens
            + self.output * usage.output_tokens
            + self.cache_read * usage.cache_read_tokens
            + self.cache_write * usage.cache_write_tokens
        )


# Usages the derived rates must price exactly as calc_price does before they are trusted.
_CHECKS = (Usage(1000, 500), Usage(3300, 500, 2000, 300), Usage(98_765, 4_321, 50_000, 7))
# id(ModelPrice) → (that price, its rates or None when only calc_price will do).
_rates: dict[int, tuple[ModelPrice, _FlatRates | None]] = {}


def _flat_rates(vendor: str, model: str, when: datetime) -> _FlatRates | None:
    """The rates of the price genai-prices applies to `model` at `when`, when it is flat.

    calc_price costs ~0.25 ms, and the gateway prices every call (and its worst case when a
    scope counts money). A flat price is linear in the token counts, so rates taken from
    calc_price itself give the same exact Decimal in a few µs. Keyed by the resolved price object, so a
    dated or time-of-day price change, or a prices update, resolves to new rates.
    """
    _, info = data_snapshot.get_snapshot().find_provider_model(model, None, vendor, None)
    prices = info.get_prices(when)
    found = _rates.get(id(prices))
    if found is not None and found[0] is prices:
        return found[1]
    rates = _derive_rates(vendor, model, when, prices)
    if len(_rates) >= 1024:
        _rates.clear()
    _rates[id(prices)] = (prices, rates)
    return rates


def _derive_rates(vendor: str, model: str, when: datetime, prices: ModelPrice) -> _FlatRates | None:
    if any(isinstance(value, TieredPrices) for value in vars(prices).values()):
        return None  # the tier depends on the total input: not linear

    def at(i: int = 0, o: int = 0, r: int = 0, w: int = 0) -> Decimal:
        return _genai_dollars(vendor, model, Usage(i, o, r, w), when)

    try:
        base, one_input = at(), at(i=1)
        rates = _FlatRates(
            base=base,
            input=one_input - base,
            output=at(o=1) - base,
            # Cached tokens are part of input_tokens: their rate is the difference to input's.
            cache_read=at(i=1, r=1) - one_input,
            cache_write=at(i=1, w=1) - one_input,
        )
        exact = all(rates.price(u) == _genai_dollars(vendor, model, u, when) for u in _CHECKS)
    except (ArithmeticError, LookupError, ValueError):
        return None
    return rates if exact else None
