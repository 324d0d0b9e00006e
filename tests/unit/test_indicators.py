"""Indicator values against hand-computed ones."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backend import indicators as ind
from services.charts.frame import candles_frame
from tests.dashboard_fixtures import series

X = pd.Series([2.0, 4.0, 6.0, 8.0, 12.0])


def approx(values: pd.Series, expected: list[float]) -> None:
    got = values.to_list()
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        if math.isnan(e):
            assert math.isnan(g), got
        else:
            assert g == pytest.approx(e, rel=1e-9), got


def test_sma() -> None:
    approx(ind.sma(X, 3), [math.nan, math.nan, 4.0, 6.0, 26 / 3])


def test_ema_is_seeded_with_the_sma_then_smoothed() -> None:
    # alpha = 2 / (3 + 1) = 0.5; seed = mean(2, 4, 6) = 4
    approx(ind.ema(X, 3), [math.nan, math.nan, 4.0, 0.5 * 8 + 0.5 * 4, 0.5 * 12 + 0.5 * 6])


def test_bollinger_uses_the_population_deviation() -> None:
    bb = ind.bollinger(X, 3, 2.0)
    sd2 = math.sqrt(8 / 3)  # (2, 4, 6): deviations -2, 0, 2
    sd4 = math.sqrt(((6 - 26 / 3) ** 2 + (8 - 26 / 3) ** 2 + (12 - 26 / 3) ** 2) / 3)
    approx(bb["mid"], [math.nan, math.nan, 4.0, 6.0, 26 / 3])
    approx(bb["upper"], [math.nan, math.nan, 4 + 2 * sd2, 6 + 2 * math.sqrt(8 / 3), 26 / 3 + 2 * sd4])
    approx(bb["lower"], [math.nan, math.nan, 4 - 2 * sd2, 6 - 2 * math.sqrt(8 / 3), 26 / 3 - 2 * sd4])


def test_rsi_with_wilder_smoothing() -> None:
    close = pd.Series([10.0, 11.0, 12.0, 11.0, 13.0, 12.0])
    # changes +1 +1 -1 +2 -1; seed over 3 changes: gain 2/3, loss 1/3 → RS 2
    # then gain (2/3·2 + 2)/3 = 10/9, loss (1/3·2)/3 = 2/9 → RS 5
    # then gain (10/9·2)/3 = 20/27, loss (2/9·2 + 1)/3 = 13/27 → RS 20/13
    approx(ind.rsi(close, 3), [math.nan, math.nan, math.nan, 100 - 100 / 3, 100 - 100 / 6, 100 - 100 / (1 + 20 / 13)])


def test_rsi_is_100_without_losses_and_50_when_flat() -> None:
    assert ind.rsi(pd.Series([1.0, 2, 3, 4, 5]), 3).iloc[-1] == 100.0
    assert ind.rsi(pd.Series([5.0] * 6), 3).iloc[-1] == 50.0


def test_vwap_uses_traded_value_and_restarts_each_utc_day() -> None:
    day = 86_400_000
    t = pd.Series([0, 60_000, day, day + 60_000])
    quote = pd.Series([100.0, 300.0, 50.0, 0.0])
    vol = pd.Series([10.0, 20.0, 5.0, 0.0])
    high = low = close = pd.Series([0.0] * 4)
    approx(ind.vwap(t, high, low, close, vol, quote), [10.0, 400 / 30, 10.0, 10.0])


def test_vwap_falls_back_to_the_typical_price() -> None:
    t = pd.Series([0, 60_000])
    high, low, close = pd.Series([12.0, 30.0]), pd.Series([8.0, 18.0]), pd.Series([10.0, 24.0])
    vol = pd.Series([10.0, 10.0])
    approx(ind.vwap(t, high, low, close, vol), [10.0, (100 + 240) / 20])


def test_short_series_and_bad_periods() -> None:
    assert ind.sma(pd.Series([1.0, 2.0]), 5).isna().all()
    assert ind.ema(pd.Series([1.0, 2.0]), 5).isna().all()
    with pytest.raises(ValueError, match="at least 1"):
        ind.sma(X, 0)


def test_every_offered_indicator_computes_on_a_candle_frame() -> None:
    df = candles_frame(series(list(np.linspace(100, 120, 60))))
    for key, spec in ind.INDICATORS.items():
        out = ind.compute(key, df)
        assert len(out) == len(df), key
        assert out.iloc[-1].notna().all(), key
        assert spec.panel in {"price", "rsi"}
