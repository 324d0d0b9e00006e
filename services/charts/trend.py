"""One colour rule for a move, wherever a price move is coloured: up, down, or flat (neutral).

A move is flat when it shows as zero at the precision it is displayed with
(``+0.00%``), so a pill never reads a red "-0.00%" and a line, a pill and a
price next to each other never disagree.
"""

from __future__ import annotations

import math
from typing import Literal

from services.charts.palette import DOWN, FLAT, UP

Trend = Literal["up", "down", "flat"]
PCT_DECIMALS = 2  # a change shows as +1.23%
RULE = "Green: up, red: down, grey: unchanged (0.00%), over the span shown beside the change."


def trend(change_pct: float | None, decimals: int = PCT_DECIMALS) -> Trend:
    """The direction of a % change as displayed with ``decimals`` (None or NaN: flat)."""
    if change_pct is None or not math.isfinite(change_pct) or round(change_pct, decimals) == 0:
        return "flat"
    return "up" if change_pct > 0 else "down"


def change_pct(first: float | None, last: float | None) -> float | None:
    """The % change from ``first`` to ``last`` (None when it can't be computed)."""
    if first is None or last is None or not first or not math.isfinite(first) or not math.isfinite(last):
        return None
    return (last / first - 1.0) * 100.0


def trend_color(t: Trend) -> str:
    return {"up": UP, "down": DOWN, "flat": FLAT}[t]
