"""Candles against what Binance itself published live, field by field (BINANCE_FUTURES capture).

A capture starts and ends inside a minute, so only two things can match
exactly (data/samples/README.md): every kline update of a minute that began
after the capture started, and the change between two consecutive updates of
one kline against the aggTrades received between them. Both are checked with
every kline field: open, high, low, close, volume, quote volume, trade count
and taker-buy volumes.
"""

from __future__ import annotations

import json

import pytest

from backend.aggregate import Aggregator
from backend.models import Candle, Trade, TradeBatch
from tests.conftest import SAMPLES

CAPTURE = SAMPLES / "ws_recordings" / "BINANCE_FUTURES.ws.1.0"


def events() -> tuple[int, list[dict]]:
    """The capture's start (ms) and its aggTrade and kline events in arrival order."""
    lines = CAPTURE.read_text().splitlines()
    start_ms = int(float(lines[0].rsplit(" ", 1)[1]) * 1000)
    out = []
    for line in lines[1:]:
        data = json.loads(line.split(": ", 1)[1])["data"]
        if data.get("e") in ("aggTrade", "kline"):
            out.append(data)
    return start_ms, out


def kline_fields(k: dict) -> tuple:
    return (float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"]), float(k["v"]), float(k["q"]), k["n"],
            float(k["V"]), float(k["Q"]))  # fmt: skip


def candle_fields(c: Candle) -> tuple:
    return (c.open, c.high, c.low, c.close, c.volume, c.quote_volume, c.trades, c.taker_buy_volume,
            c.taker_buy_quote_volume)  # fmt: skip


def agg_trade(ev: dict) -> Trade:
    side = "sell" if ev["m"] else "buy"
    return Trade(ev["s"], float(ev["p"]), float(ev["q"]), ev["T"], ev["a"], side, ev["l"] - ev["f"] + 1)


def candle_of(trades: list[dict], symbol: str, first_id: int, last_id: int) -> Candle | None:
    """Our candle of the aggTrades whose raw trade ids fall in ``[first_id, last_id]``.

    A kline names the raw trades it covers (``f`` … ``L``); that, not arrival
    order, says which aggTrades belong to which update. An aggTrade can
    straddle two kline updates (its raw trades split between them); such a
    range has no exact aggTrade answer, and None is returned for it too.
    """
    ours = [t for t in trades if t["s"] == symbol]
    starts, ends = {t["f"] for t in ours}, {t["l"] for t in ours}
    if first_id not in starts or last_id not in ends:
        return None
    picked = [agg_trade(t) for t in ours if first_id <= t["f"] and t["l"] <= last_id]
    agg = Aggregator(["1m"])
    agg.add(TradeBatch.from_trades(picked))
    (candle,) = agg.open_candles()
    return candle


def test_klines_of_minutes_that_began_in_the_capture_match_exactly():
    start_ms, evs = events()
    trades = [ev for ev in evs if ev["e"] == "aggTrade"]
    checked = 0
    for ev in (ev for ev in evs if ev["e"] == "kline"):
        k = ev["k"]
        if k["t"] <= start_ms:
            continue
        c = candle_of(trades, k["s"], k["f"], k["L"])
        if c is None:
            continue
        assert candle_fields(c) == pytest.approx(kline_fields(k), rel=1e-12), k
        checked += 1
    assert checked == 15  # every update of a minute begun in the capture that aggTrades cover exactly


def test_every_change_between_two_kline_updates_matches_the_trades_in_between():
    _, evs = events()
    trades = [ev for ev in evs if ev["e"] == "aggTrade"]
    previous: dict[tuple[str, int], dict] = {}
    checked = 0
    for ev in (ev for ev in evs if ev["e"] == "kline"):
        k = ev["k"]
        p = previous.get((k["s"], k["t"]))
        previous[(k["s"], k["t"])] = k
        if p is None:
            continue
        if k["L"] == p["L"]:  # no trade in between: nothing may change
            assert (k["v"], k["n"], k["c"], k["h"], k["l"]) == (p["v"], p["n"], p["c"], p["h"], p["l"])
            continue
        delta = candle_of(trades, k["s"], p["L"] + 1, k["L"])
        if delta is None:
            continue
        assert float(k["v"]) - float(p["v"]) == pytest.approx(delta.volume, rel=1e-9)
        assert float(k["q"]) - float(p["q"]) == pytest.approx(delta.quote_volume, rel=1e-9)
        assert k["n"] - p["n"] == delta.trades
        assert float(k["V"]) - float(p["V"]) == pytest.approx(delta.taker_buy_volume, rel=1e-9, abs=1e-12)
        assert float(k["Q"]) - float(p["Q"]) == pytest.approx(delta.taker_buy_quote_volume, rel=1e-9, abs=1e-9)
        assert float(k["c"]) == delta.close
        assert float(k["h"]) == max(float(p["h"]), delta.high)
        assert float(k["l"]) == min(float(p["l"]), delta.low)
        checked += 1
    assert checked == 33
