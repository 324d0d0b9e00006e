"""What the alert engine knows of a stream: its recent closed candles, the forming one, and watched values.

A rule watches the close or an indicator of the chart, computed by the same code that draws it
(:mod:`backend.indicators`) over the stream's recent closed candles plus the forming one.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from backend.models import Candle

if TYPE_CHECKING:
    import pandas as pd

WINDOW = 300  # closed candles kept per stream: enough for every indicator's warm-up (EMA 50 converges)
INDICATOR_EVERY_MS = 1000  # a forming candle's indicator is recomputed at most this often (event time)
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
class StreamSeries:
    """One stream's recent closed candles and its forming candle, as the engine has seen them."""

    closed: deque[Candle] = field(default_factory=lambda: deque(maxlen=WINDOW))
    forming: Candle | None = None
    last_seq: int | None = None
    # watch → (open_time, event_time, value) of its last computation: pandas costs about a millisecond
    computed: dict[str, tuple[int, int, float | None]] = field(default_factory=dict)
    # lookback → (open_time of the newest closed candle before the current one, their mean volume)
    means: dict[int, tuple[int, float]] = field(default_factory=dict)

    def apply(self, c: Candle) -> bool:
        """Take one update; True when it follows the previous one without a ``seq`` gap."""
        continuous = self.last_seq is not None and c.seq == self.last_seq + 1
        self.last_seq = c.seq
        if c.closed:
            if self.closed and self.closed[-1].open_time >= c.open_time:
                if self.closed[-1].open_time == c.open_time:
                    self.closed[-1] = c
            else:
                self.closed.append(c)
            if self.forming is not None and self.forming.open_time <= c.open_time:
                self.forming = None
        else:
            self.forming = c
        return continuous

    def candles(self) -> list[Candle]:
        """Closed candles oldest first, then the forming one."""
        return [*self.closed, self.forming] if self.forming is not None else list(self.closed)

    def current(self) -> Candle | None:
        return self.forming if self.forming is not None else (self.closed[-1] if self.closed else None)

    def back(self, n: int) -> Candle | None:
        """The candle ``n`` before the current one (None when the series is shorter)."""
        k = len(self.closed) - (n if self.forming is not None else n + 1)
        return self.closed[k] if k >= 0 else None

    def mean_volume_before(self, n: int) -> float | None:
        """Mean volume of the ``n`` closed candles before the current one; computed once per close."""
        end = len(self.closed) - (0 if self.forming is not None else 1)
        if end < n or n < 1:
            return None
        newest = self.closed[end - 1].open_time
        cached = self.means.get(n)
        if cached is None or cached[0] != newest:
            cached = self.means[n] = (newest, sum(self.closed[i].volume for i in range(end - n, end)) / n)
        return cached[1]

    def indicator(self, watch: str) -> float | None:
        """The watched indicator's value now (None while it warms up).

        Computed on every closed candle; on a forming one at most every ``INDICATOR_EVERY_MS`` of event time,
        so a thousand indicator rules cost the ingest what a few do.
        """
        cur = self.current()
        if cur is None:
            return None
        cached = self.computed.get(watch)
        fresh = cached is not None and cached[0] == cur.open_time and cur.event_time - cached[1] < INDICATOR_EVERY_MS
        if fresh and not cur.closed:
            return cached[2]  # type: ignore[index]
        values = watched_values(watch, self.candles())
        value = values[-1] if values and not math.isnan(values[-1]) else None
        self.computed[watch] = (cur.open_time, cur.event_time, value)
        return value


def candle_frame(candles: Sequence[Candle]) -> pd.DataFrame:
    """The columns the indicators read, for a run of candles."""
    import pandas as pd  # here: the relay imports this module for its names and must stay light (no pandas)

    cols = ("open_time", "high", "low", "close", "volume", "quote_volume")
    return pd.DataFrame({name: [getattr(c, name) for c in candles] for name in cols})


def watched_values(watch: str, candles: Sequence[Candle]) -> list[float]:
    """The watched value at every candle (NaN where an indicator is not ready yet)."""
    if watch == "close":
        return [c.close for c in candles]
    from backend import indicators

    key, column = INDICATOR_WATCHES[watch]
    if not candles:
        return []
    return [float(v) for v in indicators.compute(key, candle_frame(candles))[column]]
