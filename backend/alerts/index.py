"""The level index: the rules of one stream and watched value (the close or an indicator) with constant levels,
sorted by level.

An update from ``prev`` to ``value`` triggers exactly the rules whose level lies in a range between the two
(or beyond ``value`` for the level kinds), so bisection finds them: armed rules far from the price cost nothing
per update, and a thousand rules cost about what one does. Pure; :class:`backend.alerts.rules.AlertEngine`
decides what the candidates do (frequency, cooldown) and checks each one exactly.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort

INDEXED_KINDS = frozenset({"price_above", "price_below", "cross", "cross_up", "cross_down"})
CHANNEL_KINDS = frozenset({"channel_enter", "channel_exit"})
MEASURED_KINDS = frozenset({"pct_move", "volume_spike"})


class Ladder:
    """Levels in ascending order with the rule each belongs to."""

    def __init__(self) -> None:
        self.levels: list[float] = []
        self.ids: list[int] = []

    def add(self, level: float, rule_id: int) -> None:
        i = bisect_right(self.levels, level)
        self.levels.insert(i, level)
        self.ids.insert(i, rule_id)

    def below(self, x: float) -> list[int]:
        """Rules with level < x."""
        return self.ids[: bisect_left(self.levels, x)]

    def upto(self, x: float) -> list[int]:
        """Rules with level <= x."""
        return self.ids[: bisect_right(self.levels, x)]

    def above(self, x: float) -> list[int]:
        """Rules with level > x."""
        return self.ids[bisect_right(self.levels, x) :]

    def within(self, lo: float, hi: float, *, lo_open: bool, hi_open: bool) -> list[int]:
        """Rules with level in the range (each end open or closed)."""
        start = (bisect_right if lo_open else bisect_left)(self.levels, lo)
        end = (bisect_left if hi_open else bisect_right)(self.levels, hi)
        return self.ids[start:end]


class LevelIndex:
    """One stream's indexed rules on one watched value (for one of its two update sequences: every update, or
    closes only)."""

    def __init__(self) -> None:
        self.prev: float | None = None  # the value the last update showed (None: none yet, warming up, or a gap)
        self.above = Ladder()  # price_above
        self.below = Ladder()  # price_below
        self.up = Ladder()  # cross_up and cross
        self.down = Ladder()  # cross_down and cross
        self.edges = Ladder()  # channel bounds, both of each channel
        self.fresh: set[int] = set()  # rules added since the last update: no previous value for them yet
        self.crossings: list[float] = []  # every level a move can cross (up, down, edges), sorted
        # Around the last value, the open range with no level in it and no price_above/below reached: a move
        # within it triggers nothing, so most updates cost two comparisons (empty until the first update).
        self.quiet: tuple[float, float] = (math.inf, -math.inf)
        self.size = 0

    def add(self, rule_id: int, kind: str, threshold: float | list[float], *, fresh: bool) -> None:
        self.size += 1
        if fresh:
            self.fresh.add(rule_id)
        if kind in CHANNEL_KINDS:
            for bound in threshold:  # type: ignore[union-attr]
                self.edges.add(float(bound), rule_id)
                insort(self.crossings, float(bound))
            return
        level = float(threshold)  # type: ignore[arg-type]
        if kind not in {"price_above", "price_below"}:
            insort(self.crossings, level)
        if kind == "price_above":
            self.above.add(level, rule_id)
        elif kind == "price_below":
            self.below.add(level, rule_id)
        if kind in {"cross_up", "cross"}:
            self.up.add(level, rule_id)
        if kind in {"cross_down", "cross"}:
            self.down.add(level, rule_id)

    def candidates(self, prev: float | None, value: float) -> list[int]:
        """The rules this update may trigger (a superset for channels; exact for the rest)."""
        self.quiet = self._quiet_around(value)
        out: list[int] = []
        if self.above.levels and self.above.levels[0] < value:
            out += self.above.below(value)
        if self.below.levels and self.below.levels[-1] > value:
            out += self.below.above(value)
        if prev is None or prev == value:
            return out
        lo, hi = (prev, value) if prev < value else (value, prev)
        i = bisect_left(self.crossings, lo)
        if i == len(self.crossings) or self.crossings[i] > hi:
            return out  # no level between the two closes: the common case, one bisection
        fresh = self.fresh
        if value > prev:
            if self.up.levels:
                out += [i for i in self.up.within(prev, value, lo_open=False, hi_open=True) if i not in fresh]
        elif self.down.levels:
            out += [i for i in self.down.within(value, prev, lo_open=True, hi_open=False) if i not in fresh]
        if self.edges.levels:
            edges = self.edges.within(lo, hi, lo_open=False, hi_open=False)
            out += dict.fromkeys(i for i in edges if i not in fresh)
        return out

    def _quiet_around(self, value: float) -> tuple[float, float]:
        levels = self.crossings
        i = bisect_left(levels, value)
        if i < len(levels) and levels[i] == value:
            return (math.inf, -math.inf)  # on a level: any move may cross it
        low = levels[i - 1] if i > 0 else -math.inf
        high = levels[i] if i < len(levels) else math.inf
        if self.above.levels:
            high = min(high, self.above.levels[0])
        if self.below.levels:
            low = max(low, self.below.levels[-1])
        return (low, high)


class MeasureIndex:
    """One stream's ``pct_move`` and ``volume_spike`` rules on the close, grouped by lookback, sorted by threshold.

    The move (or the volume's ratio to its mean) is computed once per group and update; the rules it reaches
    are those with a threshold (or factor) up to it: found by bisection, then each checked exactly.
    """

    def __init__(self) -> None:
        self.groups: dict[tuple[str, int], Ladder] = {}
        # Where no rule can fire for the current candle: closes strictly between the two, volumes strictly below
        # the third. Moves are measured from closed candles and volumes against closed ones, so the bounds hold
        # until the next close: most updates cost two comparisons (see AlertEngine._calm).
        self.calm_for: object = None  # the candle the bounds were computed before (StreamSeries.before)
        self.calm: tuple[float, float, float] = (math.inf, -math.inf, -math.inf)

    def add(self, rule_id: int, kind: str, lookback: int, threshold: float) -> None:
        self.groups.setdefault((kind, lookback), Ladder()).add(threshold, rule_id)


def measurable(kind: str, watch: str) -> bool:
    return kind in MEASURED_KINDS and watch == "close"


def indexable(kind: str, threshold: object) -> bool:
    """Whether a rule goes in the level index: it watches a value (the close or an indicator) against constant
    levels."""
    if kind in INDEXED_KINDS:
        return isinstance(threshold, int | float) and not isinstance(threshold, bool)
    return kind in CHANNEL_KINDS and isinstance(threshold, list)
