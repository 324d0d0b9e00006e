"""What the alert engine knows of a stream: its recent closed candles, the forming one, and watched values.

A rule watches the close or an indicator of the chart: the running form of the chart's indicators
(:func:`backend.indicators.running`), carried over the stream's closed candles and applied to the forming one,
so an update costs microseconds and gives the numbers the chart's pandas computation gives over the same candles.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from backend.models import Candle

if TYPE_CHECKING:
    from backend.indicators import Running

MAX_LOOKBACK = 300  # the most candles a move or a volume mean looks back: the API, the form and WINDOW follow it
WINDOW = MAX_LOOKBACK + 1  # closed candles (and indicator points) kept per stream: a closed one looks back past itself
INDICATOR_WATCHES: dict[str, tuple[str, str]] = {
    # watch name → (indicator key, column of its frame)
    "sma20": ("sma20", "SMA 20"),
    "sma50": ("sma50", "SMA 50"),
    "ema20": ("ema20", "EMA 20"),
    "ema50": ("ema50", "EMA 50"),
    "vwap": ("vwap", "VWAP"),
    "bb20_upper": ("bb20", "upper"),
    "bb20_mid": ("bb20", "mid"),
    "bb20_lower": ("bb20", "lower"),
    "rsi14": ("rsi14", "RSI 14"),
}
WATCHES: tuple[str, ...] = ("close", *INDICATOR_WATCHES)


@dataclass
class Track:
    """One indicator along a stream's closed candles: after each (aligned with them), its state and its lines."""

    start: Running  # the state before any candle
    after: deque[tuple[Running, dict[str, float]]] = field(default_factory=lambda: deque(maxlen=WINDOW))

    def last(self) -> Running:
        return self.after[-1][0] if self.after else self.start

    def add(self, c: Candle) -> None:
        state = self.last()
        self.after.append((state.closed(c), state.at(c)))

    def replace_last(self, c: Candle) -> None:
        """The newest closed candle came again, corrected: recompute it from the state before it."""
        state = self.after[-2][0] if len(self.after) > 1 else self.start
        self.after[-1] = (state.closed(c), state.at(c))


@dataclass
class StreamSeries:
    """One stream's recent closed candles and its forming candle, as the engine has seen them."""

    closed: deque[Candle] = field(default_factory=lambda: deque(maxlen=WINDOW))
    forming: Candle | None = None
    # indicator key → its track along ``closed``, for the indicators some rule watches
    tracks: dict[str, Track] = field(default_factory=dict)
    # lookback → (the candle it was computed before: see :meth:`before`; the mean volume)
    means: dict[int, tuple[Candle | None, float]] = field(default_factory=dict)

    def apply(self, c: Candle) -> None:
        """Take one update (the engine tracks ``seq`` gaps: they matter to crossings, not to candles)."""
        if not c.closed:
            self.forming = c
            return
        if self.closed and self.closed[-1].open_time >= c.open_time:
            if self.closed[-1].open_time == c.open_time:
                self.closed[-1] = c
                for track in self.tracks.values():
                    track.replace_last(c)
        else:
            self.closed.append(c)
            for track in self.tracks.values():
                track.add(c)
        if self.forming is not None and self.forming.open_time <= c.open_time:
            self.forming = None

    def candles(self) -> list[Candle]:
        """Closed candles oldest first, then the forming one."""
        return [*self.closed, self.forming] if self.forming is not None else list(self.closed)

    def current(self) -> Candle | None:
        return self.forming if self.forming is not None else (self.closed[-1] if self.closed else None)

    def back(self, n: int) -> Candle | None:
        """The candle ``n`` before the current one (None when the series is shorter)."""
        k = self._back_index(n)
        return self.closed[k] if k >= 0 else None

    def mean_volume_before(self, n: int) -> float | None:
        """Mean volume of the ``n`` closed candles before the current one; computed once per close."""
        end = len(self.closed) - (0 if self.forming is not None else 1)
        if end < n or n < 1:
            return None
        newest = self.closed[end - 1]
        cached = self.means.get(n)
        if cached is None or cached[0] is not newest:
            closed = self.closed
            cached = self.means[n] = (newest, sum([closed[i].volume for i in range(end - n, end)]) / n)
        return cached[1]

    def before(self) -> Candle | None:
        """The newest closed candle before the current one: what moves and volume means are measured against are
        it and the candles before it, the same while a candle forms and when it closes (a corrected candle is
        another object)."""
        k = len(self.closed) - (1 if self.forming is not None else 2)
        return self.closed[k] if k >= 0 else None

    def indicator(self, watch: str) -> float | None:
        """The watched indicator's value now (None while it warms up)."""
        key, column = INDICATOR_WATCHES[watch]
        track = self._track(key)
        if self.forming is not None:
            value = track.last().at(self.forming)[column]
        elif track.after:
            value = track.after[-1][1][column]
        else:
            return None
        return None if math.isnan(value) else value

    def indicator_back(self, watch: str, n: int) -> float | None:
        """The watched indicator's value ``n`` candles before the current one (None when unknown or warming up)."""
        key, column = INDICATOR_WATCHES[watch]
        track, k = self._track(key), self._back_index(n)
        value = track.after[k][1][column] if k >= 0 else math.nan
        return None if math.isnan(value) else value

    def _back_index(self, n: int) -> int:
        return len(self.closed) - (n if self.forming is not None else n + 1)

    def _track(self, key: str) -> Track:
        """The indicator's track, started over the closed candles kept when a rule first watches it."""
        track = self.tracks.get(key)
        if track is None:
            from backend.indicators import running  # here: the relay imports this module for its names (no pandas)

            track = self.tracks[key] = Track(running(key))
            for c in self.closed:
                track.add(c)
        return track
