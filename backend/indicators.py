"""Technical indicators: on candle columns (pandas, for the charts) and one candle at a time (for alerts).

The charts draw the vectorised functions; the alert engine carries the running states at the end of this
module, which give the same numbers over the same candles. Pure: no I/O.

Conventions follow what traders see on TradingView:
- ``sma``: simple mean over ``n`` candles; NaN until ``n`` candles exist.
- ``ema``: seeded with the SMA of the first ``n`` values, then
  ``ema = alpha·x + (1 − alpha)·ema_prev`` with ``alpha = 2 / (n + 1)``.
- ``bollinger``: SMA ± ``k`` population standard deviations (ddof 0).
- ``rsi``: Wilder's smoothing (alpha ``1/n``) of gains and losses, seeded
  with their simple mean over the first ``n`` changes.
- ``vwap``: Σ traded value / Σ volume, anchored to each UTC day; with the
  candles' exact ``quote_volume`` when given, else the typical price
  (high + low + close) / 3 × volume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

DAY_MS = 86_400_000


def sma(values: pd.Series, n: int) -> pd.Series:
    _check_period(n)
    return values.rolling(n, min_periods=n).mean()


def ema(values: pd.Series, n: int) -> pd.Series:
    _check_period(n)
    return _seeded_smoothing(values, n, alpha=2.0 / (n + 1))


def bollinger(values: pd.Series, n: int = 20, k: float = 2.0) -> pd.DataFrame:
    """Columns ``mid``, ``upper``, ``lower``."""
    _check_period(n)
    mid = sma(values, n)
    sd = values.rolling(n, min_periods=n).std(ddof=0)
    return pd.DataFrame({"mid": mid, "upper": mid + k * sd, "lower": mid - k * sd}, index=values.index)


def rsi(close: pd.Series, n: int = 14) -> pd.Series:
    """Relative strength index, 0–100; NaN for the first ``n`` candles."""
    _check_period(n)
    change = close.diff()
    gain = _seeded_smoothing(change.clip(lower=0).iloc[1:], n, alpha=1.0 / n)
    loss = _seeded_smoothing((-change).clip(lower=0).iloc[1:], n, alpha=1.0 / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        rs = gain / loss
        out = 100.0 - 100.0 / (1.0 + rs)
    # no losses at all: 100 (or 50 when flat: no gains either)
    out = out.where(loss != 0, np.where(gain > 0, 100.0, 50.0))
    out = out.where(gain.notna())
    return out.reindex(close.index)


def vwap(
    open_time: pd.Series,
    high: pd.Series,
    low: pd.Series,
    close: pd.Series,
    volume: pd.Series,
    quote_volume: pd.Series | None = None,
) -> pd.Series:
    """Volume-weighted average price, restarting at 00:00 UTC each day (``open_time`` in ms)."""
    value = quote_volume if quote_volume is not None else (high + low + close) / 3.0 * volume
    day = open_time // DAY_MS
    cum_value = value.groupby(day).cumsum()
    cum_volume = volume.groupby(day).cumsum()
    out = cum_value / cum_volume.where(cum_volume > 0)
    # before the day's first trade there is no VWAP yet
    return out.astype(float)


def _seeded_smoothing(values: pd.Series, n: int, alpha: float) -> pd.Series:
    """Exponential smoothing seeded with the mean of the first ``n`` values (NaN before)."""
    x = values.to_numpy(dtype=float)
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        prev = float(np.mean(x[:n]))
        out[n - 1] = prev
        for i in range(n, len(x)):
            prev = alpha * x[i] + (1.0 - alpha) * prev
            out[i] = prev
    return pd.Series(out, index=values.index)


def _check_period(n: int) -> None:
    if n < 1:
        raise ValueError(f"an indicator period must be at least 1, got {n}")


@dataclass(frozen=True)
class IndicatorSpec:
    """An indicator the candles page offers: where it is drawn and with which parameters."""

    key: str
    label: str
    panel: str  # "price" (overlay) or "rsi" (own panel beneath the volume)
    period: int
    color: str


INDICATORS: dict[str, IndicatorSpec] = {
    spec.key: spec
    for spec in (
        IndicatorSpec("sma20", "SMA 20", "price", 20, "#f0b90b"),
        IndicatorSpec("sma50", "SMA 50", "price", 50, "#ab47bc"),
        IndicatorSpec("ema20", "EMA 20", "price", 20, "#29b6f6"),
        IndicatorSpec("ema50", "EMA 50", "price", 50, "#ff7043"),
        IndicatorSpec("vwap", "VWAP", "price", 0, "#ec407a"),
        IndicatorSpec("bb20", "Bollinger 20, 2", "price", 20, "#7e57c2"),
        IndicatorSpec("rsi14", "RSI 14", "rsi", 14, "#7e57c2"),
    )
}


def compute(key: str, df: pd.DataFrame) -> pd.DataFrame:
    """One indicator's lines for a candle frame (open_time, high, low, close, volume, quote_volume columns)."""
    spec = INDICATORS[key]
    close = df["close"]
    if key.startswith("sma"):
        return pd.DataFrame({spec.label: sma(close, spec.period)})
    if key.startswith("ema"):
        return pd.DataFrame({spec.label: ema(close, spec.period)})
    if key == "vwap":
        quote = df.get("quote_volume")
        return pd.DataFrame({spec.label: vwap(df["open_time"], df["high"], df["low"], close, df["volume"], quote)})
    if key.startswith("bb"):
        return bollinger(close, spec.period, 2.0)
    if key.startswith("rsi"):
        return pd.DataFrame({spec.label: rsi(close, spec.period)})
    raise KeyError(key)


# ---------------------------------------------------------------- one candle at a time
#
# The alert engine needs the newest point of an indicator on every update of a forming candle: recomputing the
# whole frame through pandas costs about a millisecond, so it carries each indicator's state over the closed
# candles instead and adds the forming one, in microseconds. The same definitions as above, and the same numbers
# over the same candles (tests/unit/test_indicators.py compares them on real candles to 1e-9); written by hand
# because no library we use updates these one point at a time with TradingView's seeding. Frozen states and
# pure methods: ``closed(c)`` is the state once ``c`` has closed, ``at(c)`` the lines with ``c`` as the newest
# candle (closed or forming), NaN while the indicator warms up.


class CandleLike(Protocol):
    """What the running indicators read of a candle (:class:`backend.models.Candle` has it)."""

    @property
    def open_time(self) -> int: ...
    @property
    def close(self) -> float: ...
    @property
    def volume(self) -> float: ...
    @property
    def quote_volume(self) -> float: ...


class Running(Protocol):
    """An indicator's state after the closed candles it has seen."""

    def closed(self, c: CandleLike) -> Running: ...
    def at(self, c: CandleLike) -> dict[str, float]: ...


NAN = float("nan")


@dataclass(frozen=True, slots=True)
class Smoothing:
    """:func:`_seeded_smoothing` one value at a time: the mean of the first ``n`` values, then exponential."""

    n: int
    alpha: float
    count: int = 0  # values seen
    total: float = 0.0  # their sum, until the seed
    value: float = NAN  # the smoothed value after them (NaN before the seed)

    def step(self, x: float) -> Smoothing:
        return Smoothing(self.n, self.alpha, self.count + 1, self.total + x, self.peek(x))

    def peek(self, x: float) -> float:
        """The smoothed value once ``x`` is added."""
        seen = self.count + 1
        if seen < self.n:
            return NAN
        if seen == self.n:
            return (self.total + x) / self.n
        return self.alpha * x + (1.0 - self.alpha) * self.value


@dataclass(frozen=True, slots=True)
class RunningEma:
    label: str
    smoothing: Smoothing

    def closed(self, c: CandleLike) -> RunningEma:
        return RunningEma(self.label, self.smoothing.step(c.close))

    def at(self, c: CandleLike) -> dict[str, float]:
        return {self.label: self.smoothing.peek(c.close)}


@dataclass(frozen=True, slots=True)
class RunningWindow:
    """SMA and Bollinger bands: the newest ``n - 1`` closes, summed around their mean (so the variance of prices
    far from zero keeps its digits), plus the newest candle's close."""

    label: str
    n: int
    k: float | None = None  # Bollinger: the bands' width in standard deviations; None: an SMA
    closes: tuple[float, ...] = ()
    ref: float = 0.0  # the mean of ``closes``
    d1: float = 0.0  # Σ (close − ref)
    d2: float = 0.0  # Σ (close − ref)²

    def closed(self, c: CandleLike) -> RunningWindow:
        closes = (*self.closes, c.close)[1 - self.n :] if self.n > 1 else ()
        ref = math.fsum(closes) / len(closes) if closes else 0.0
        d1 = math.fsum(x - ref for x in closes)
        d2 = math.fsum((x - ref) ** 2 for x in closes)
        return RunningWindow(self.label, self.n, self.k, closes, ref, d1, d2)

    def at(self, c: CandleLike) -> dict[str, float]:
        n = self.n
        if len(self.closes) < n - 1:
            return {self.label: NAN} if self.k is None else {"mid": NAN, "upper": NAN, "lower": NAN}
        d = c.close - self.ref
        m = (self.d1 + d) / n  # the mean's distance from ref
        mid = self.ref + m
        if self.k is None:
            return {self.label: mid}
        sd = math.sqrt(max((self.d2 + d * d) / n - m * m, 0.0))
        return {"mid": mid, "upper": mid + self.k * sd, "lower": mid - self.k * sd}


@dataclass(frozen=True, slots=True)
class RunningRsi:
    label: str
    gain: Smoothing
    loss: Smoothing
    last: float = NAN  # the previous closed candle's close (NaN before the first)

    def closed(self, c: CandleLike) -> RunningRsi:
        if math.isnan(self.last):
            return RunningRsi(self.label, self.gain, self.loss, c.close)
        change = c.close - self.last
        return RunningRsi(self.label, self.gain.step(max(change, 0.0)), self.loss.step(max(-change, 0.0)), c.close)

    def at(self, c: CandleLike) -> dict[str, float]:
        if math.isnan(self.last):
            return {self.label: NAN}
        change = c.close - self.last
        gain, loss = self.gain.peek(max(change, 0.0)), self.loss.peek(max(-change, 0.0))
        if math.isnan(gain):
            return {self.label: NAN}
        if loss == 0:
            return {self.label: 100.0 if gain > 0 else 50.0}
        return {self.label: 100.0 - 100.0 / (1.0 + gain / loss)}


@dataclass(frozen=True, slots=True)
class RunningVwap:
    """Σ quote volume / Σ volume of the day's closed candles so far, plus the newest candle's."""

    label: str
    day: int = -1
    value: float = 0.0
    volume: float = 0.0

    def closed(self, c: CandleLike) -> RunningVwap:
        value, volume = self._sums(c)
        return RunningVwap(self.label, c.open_time // DAY_MS, value, volume)

    def at(self, c: CandleLike) -> dict[str, float]:
        value, volume = self._sums(c)
        return {self.label: value / volume if volume > 0 else NAN}

    def _sums(self, c: CandleLike) -> tuple[float, float]:
        if c.open_time // DAY_MS != self.day:
            return c.quote_volume, c.volume
        return self.value + c.quote_volume, self.volume + c.volume


def running(key: str) -> Running:
    """A chart indicator's running state before any candle: the same lines as :func:`compute` gives for ``key``
    (VWAP from the candles' quote volume, as ``compute`` reads it)."""
    spec = INDICATORS[key]
    n = spec.period
    if key.startswith("sma"):
        return RunningWindow(spec.label, n)
    if key.startswith("ema"):
        return RunningEma(spec.label, Smoothing(n, 2.0 / (n + 1)))
    if key == "vwap":
        return RunningVwap(spec.label)
    if key.startswith("bb"):
        return RunningWindow(spec.label, n, 2.0)
    if key.startswith("rsi"):
        return RunningRsi(spec.label, Smoothing(n, 1.0 / n), Smoothing(n, 1.0 / n))
    raise KeyError(key)
