"""Technical indicators on candle columns: pure pandas, no state, no I/O.

The charts draw them and the alert engine evaluates them with the same code.

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

from dataclasses import dataclass

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
