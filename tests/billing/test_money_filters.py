"""Money as people read it: dollars to the cent, and sub-cent amounts not shown as nothing."""

from __future__ import annotations

import pytest

from apps.billing.templatetags.money import dollars


@pytest.mark.parametrize(
    ("micros", "shown"),
    [
        (0, "$0.00"),
        (1_234_500_000, "$1,234.50"),
        (-230_000, "-$0.23"),
        (998_874, "$1.00"),
        (1_100, "$0.0011"),
        (1, "$0.000001"),
        (-9_999, "-$0.009999"),
        (10_000, "$0.01"),
    ],
)
def test_dollars(micros: int, shown: str) -> None:
    assert dollars(micros) == shown
