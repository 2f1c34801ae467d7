"""Cost totals as a person reads them: 0.1 + 0.2 is 0.3.

Costs arrive as JSON numbers and are kept as doubles. Adding doubles leaves binary noise
in the 16th and 17th significant digits (0.1 + 0.2 = 0.30000000000000004), which a usage
report or an invoice reconciliation should not show. A double holds any decimal of up to
15 significant digits exactly, so totals are summed without intermediate rounding
(``math.fsum``) and then rounded to 15 significant digits: sums of costs that have fewer
digits than that come out as their decimal sum. Every total of the service (a thread's,
a run's, a usage group's, a summary's) goes through here, whether Python or the database
added it up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

SIGNIFICANT_DIGITS = 15
"""Decimal digits a double holds exactly (C's ``DBL_DIG``)."""


def cost_total(costs: Iterable[float]) -> float:
    """The sum of ``costs``, rounded to :data:`SIGNIFICANT_DIGITS` significant digits."""
    return rounded_cost(math.fsum(costs))


def rounded_cost(total: float) -> float:
    """A total summed elsewhere (e.g. by the database), rounded like :func:`cost_total`."""
    return float(f"{total:.{SIGNIFICANT_DIGITS}g}")
