"""Cost totals: the decimal sum of the recorded costs, without binary noise."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from domain.costs import cost_total, rounded_cost

# Costs as clients send them: up to 6 decimals, up to a million dollars each.
COSTS = st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False)


def test_the_noise_of_adding_doubles_is_gone() -> None:
    assert 0.1 + 0.2 != 0.3
    assert cost_total([0.1, 0.2]) == 0.3
    assert cost_total([0.1, 0.2, 0.7]) == 1.0
    assert cost_total([]) == 0.0
    assert rounded_cost(0.1 + 0.2) == 0.3


def test_digits_that_a_cost_really_has_are_kept() -> None:
    assert cost_total([1e-12, 2e-12]) == 3e-12
    assert cost_total([123456.789012, 0.000001]) == 123456.789013
    assert rounded_cost(2.5e9) == 2.5e9


@given(st.lists(COSTS, max_size=50))
def test_a_total_is_the_decimal_sum_of_the_costs_sent(costs: list[Decimal]) -> None:
    assert cost_total(float(c) for c in costs) == float(sum(costs, Decimal(0)))
