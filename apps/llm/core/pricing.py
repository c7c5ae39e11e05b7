"""Usage → cost in integer micro-dollars, from genai-prices (cache read/write tokens included).

The local offline model has no market price; it is charged a configurable nominal rate so that
budgets, credits and the paywall behave offline exactly as they do with real providers.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

import genai_prices

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
    price = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens or None,
            cache_write_tokens=usage.cache_write_tokens or None,
        ),
        model_ref=model,
        provider_id=_vendor(provider),
    )
    return _to_micros(Decimal(price.total_price))
