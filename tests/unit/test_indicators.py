"""Indicator values against hand-computed ones."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pandas as pd
import pytest

from backend import indicators as ind
from backend.models import Candle
from backend.offline import aggregate_file
from services.charts.frame import candles_frame
from tests.conftest import SAMPLES
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


# ---------------------------------------------------------------- one candle at a time (the alert engine's path)


def running_points(key: str, candles: list[Candle]) -> list[dict[str, float]]:
    """Each candle's lines as the alert engine sees them: the state after the candles before it, at the candle."""
    state, out = ind.running(key), []
    for c in candles:
        out.append(state.at(c))
        state = state.closed(c)
    return out


def same(got: float, want: float) -> bool:
    return (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-9, abs=0.0)


@pytest.fixture(scope="module")
def xrpeth_1m() -> list[Candle]:
    """Binance's XRP/ETH minutes rebuilt from its aggregate trades: 3,560 candles over three UTC days, with
    real quote volumes and empty minutes."""
    candles, _, _ = aggregate_file(SAMPLES / "binance_xrpeth_2019" / "XRP_ETH-aggtrades.json.gz", ("1m",))
    assert len(candles) == 3560 and len({c.open_time // ind.DAY_MS for c in candles}) == 3
    return [msgspec.structs.replace(c, closed=True) for c in candles]


@pytest.mark.parametrize("key", list(ind.INDICATORS))
def test_running_indicators_match_the_charts_on_real_candles(key: str, xrpeth_1m: list[Candle]) -> None:
    want = ind.compute(key, candles_frame(xrpeth_1m))
    got = running_points(key, xrpeth_1m)
    for column in want.columns:
        expected = want[column].to_list()
        values = [p[column] for p in got]
        bad = [i for i, (g, e) in enumerate(zip(values, expected, strict=True)) if not same(g, e)]
        assert bad == [], (column, bad[:5], [(values[i], expected[i]) for i in bad[:5]])
        warm_up = sum(math.isnan(e) for e in expected)
        assert warm_up == {"sma50": 49, "ema50": 49, "sma20": 19, "ema20": 19, "bb20": 19, "rsi14": 14}.get(key, 0)


@pytest.mark.parametrize("key", list(ind.INDICATORS))
def test_running_indicators_match_the_charts_with_a_forming_candle(key: str, xrpeth_1m: list[Candle]) -> None:
    """The newest point with a forming candle (half the volume, the close back at the open) after the closed
    ones: through the warm-up, then every 97th candle and around each UTC midnight."""
    midnights = [i for i, c in enumerate(xrpeth_1m) if c.open_time % ind.DAY_MS == 0]
    assert midnights == [0, 1440, 2880]
    points = sorted(
        {*range(0, 60), *range(60, len(xrpeth_1m), 97), *(m + d for m in midnights[1:] for d in (-1, 0, 1))}
    )
    state, done = ind.running(key), 0
    for i in points:
        for c in xrpeth_1m[done:i]:
            state = state.closed(c)
        done = i
        c = xrpeth_1m[i]
        forming = msgspec.structs.replace(
            c, close=c.open, volume=c.volume / 2, quote_volume=c.quote_volume / 2, closed=False
        )
        want = ind.compute(key, candles_frame([*xrpeth_1m[:i], forming])).iloc[-1]
        got = state.at(forming)
        assert all(same(got[col], float(want[col])) for col in want.index), (i, got, want.to_dict())


def closed_state(key: str, candles: list[Candle]) -> ind.Running:
    state = ind.running(key)
    for c in candles:
        state = state.closed(c)
    return state


def test_running_literal_values() -> None:
    """Hand-computed: 19 closes 100..118, then 140 (mean 110.55), then 160."""
    closes = [100.0 + i for i in range(19)] + [140.0]
    candles = series([*closes, 160.0])
    mean = (sum(range(100, 119)) + 140) / 20
    assert mean == 110.55
    assert math.isnan(closed_state("sma20", candles[:18]).at(candles[18])["SMA 20"])  # 19 candles: warming up
    assert closed_state("sma20", candles[:19]).at(candles[19]) == {"SMA 20": 110.55}
    # EMA 20: the mean of the first 20, then 2/21 · 160 + 19/21 · 110.55
    assert math.isnan(closed_state("ema20", candles[:18]).at(candles[18])["EMA 20"])
    assert closed_state("ema20", candles[:19]).at(candles[19]) == {"EMA 20": 110.55}
    ema = closed_state("ema20", candles[:20]).at(candles[20])["EMA 20"]
    assert ema == pytest.approx(2 / 21 * 160 + 19 / 21 * 110.55, rel=1e-12)
    # Bollinger 20, 2: population deviation of the 20 closes
    sd = math.sqrt(sum((x - mean) ** 2 for x in closes) / 20)
    bb = closed_state("bb20", candles[:19]).at(candles[19])
    assert bb == pytest.approx({"mid": 110.55, "upper": 110.55 + 2 * sd, "lower": 110.55 - 2 * sd}, rel=1e-12)
    # RSI 14: 14 rises of 1 → no losses: 100; then a fall of 7: gain 13/14, loss 7/14 → 100 − 100 / (1 + 13/7)
    rsi_closes = series([10.0 + i for i in range(15)] + [17.0])
    assert math.isnan(closed_state("rsi14", rsi_closes[:13]).at(rsi_closes[13])["RSI 14"])
    assert closed_state("rsi14", rsi_closes[:14]).at(rsi_closes[14]) == {"RSI 14": 100.0}
    rsi = closed_state("rsi14", rsi_closes[:15]).at(rsi_closes[15])["RSI 14"]
    assert rsi == pytest.approx(100 - 100 / (1 + 13 / 7), rel=1e-12)
    # VWAP: Σ quote volume / Σ volume within the UTC day, restarting at midnight
    day = ind.DAY_MS
    t = [day - 60_000, day, day + 60_000]
    vwap_candles = [
        msgspec.structs.replace(candles[0], open_time=ot, volume=v, quote_volume=q)
        for ot, v, q in zip(t, [10.0, 0.0, 5.0], [100.0, 0.0, 60.0], strict=True)
    ]
    assert [p["VWAP"] for p in running_points("vwap", vwap_candles)][::2] == [10.0, 12.0]
    assert math.isnan(running_points("vwap", vwap_candles)[1]["VWAP"])  # the new day has no volume yet
