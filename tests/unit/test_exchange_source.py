"""The live exchange source's pure parts: Binance's own 1m klines rolled up give Binance's own 5m klines, the
aggregator takes exchange candles as final history and carries on with trades, ccxt trades become batches
(deduplicated, bad ones counted), symbols map both ways, backoff grows with jitter."""

from __future__ import annotations

import json

import pytest

from backend.aggregate import Aggregator
from backend.models import Trade, TradeBatch
from backend.sources.backfill import kline_candle, rollup
from backend.sources.ccxt_trades import symbol_table
from tests.conftest import SAMPLES

XRP = SAMPLES / "binance_xrpeth_2019"


def klines(name: str) -> list[list]:
    return json.loads((XRP / name).read_text())


def test_binance_1m_klines_roll_up_to_binance_5m_klines():
    ones = [kline_candle("XRPETH", row) for row in klines("XRP_ETH-1m.json")[:-1]]  # the last was still open
    fives = rollup(ones, "5m", 300_000)
    exchange = {row[0]: row[1:6] for row in klines("XRP_ETH-5m.json")}
    complete = [c for c, done in fives if done]
    assert len(complete) == 711
    for c in complete:
        assert [c.open, c.high, c.low, c.close] == exchange[c.open_time][:4]
        assert c.volume == pytest.approx(exchange[c.open_time][4], rel=1e-12)
    assert fives[0][0].open_time == 1570752000000
    assert [done for _, done in fives[-1:]] == [False]  # the forming 5m period at the end


def test_rollup_leaves_out_a_first_period_not_covered_from_its_start():
    ones = [kline_candle("XRPETH", row) for row in klines("XRP_ETH-1m.json")[2:12]]  # 00:02 … 00:11
    assert [(c.open_time, done) for c, done in rollup(ones, "5m", 300_000)] == [
        (1570752300000, True),
        (1570752600000, False),
    ]


def test_binance_raw_kline_rows_give_every_field():
    raw = [1626992700000, "7.6", "7.7", "7.5", "7.65", "100.5", 1626992759999, "765.2", 42, "60.1", "459.9", "0"]
    c = kline_candle("SUSHIUSDT", [1626992700000, 7.6, 7.7, 7.5, 7.65, 100.5], raw)
    assert (c.quote_volume, c.trades, c.taker_buy_volume, c.taker_buy_quote_volume) == (765.2, 42, 60.1, 459.9)
    assert (c.open_time, c.close_time, c.closed) == (1626992700000, 1626992759999, True)


def test_final_candles_are_history_the_stream_carries_on_from():
    rows = klines("XRP_ETH-1m.json")[:7]  # 00:00 … 00:06 closed
    ones = [kline_candle("XRPETH", row) for row in rows]
    agg = Aggregator(["1m", "5m"])
    agg.put_final("XRPETH", {"1m": rollup(ones, "1m", 60_000), "5m": rollup(ones, "5m", 300_000)})
    out = agg.drain(0, force=True)
    closed_1m = [(c.open_time, c.seq, c.close) for c in out if c.interval == "1m"]
    assert closed_1m == [(row[0], i + 1, row[4]) for i, row in enumerate(rows)]
    (five,) = [c for c in out if c.interval == "5m" and c.closed]
    assert (five.open_time, five.volume, five.seq) == (1570752000000, 3478.0, 1)  # Binance's own 5m kline
    (forming,) = [c for c in out if c.interval == "5m" and not c.closed]
    assert (forming.open_time, forming.volume, forming.seq) == (1570752300000, 2392.0, 2)

    # a trade in the minute after the history; one inside it is late (the exchange's candle is final)
    agg.add(TradeBatch.from_trades([Trade("XRPETH", 0.0015, 10.0, 1570752420500, 99, "buy")]))
    agg.add(TradeBatch.from_trades([Trade("XRPETH", 0.0016, 10.0, 1570752410000, 98, "buy")]))
    assert agg.late == {"XRPETH": 1}
    out = agg.drain(0, force=True)
    one = next(c for c in out if c.interval == "1m")
    assert (one.open_time, one.open, one.volume, one.seq, one.closed) == (1570752420000, 0.0015, 10.0, 8, False)
    five = next(c for c in out if c.interval == "5m")
    assert (five.open_time, five.close, five.volume, five.seq) == (1570752300000, 0.0015, 2402.0, 3)


def test_symbol_table_maps_ours_to_unified_preferring_spot():
    markets = {
        "BTC/USDT": {"base": "BTC", "quote": "USDT", "spot": True},
        "BTC/USDT:USDT": {"base": "BTC", "quote": "USDT", "spot": False},
        "ETH/BTC": {"base": "ETH", "quote": "BTC", "spot": True, "active": False},
        "1000PEPE/USDT:USDT": {"base": "1000PEPE", "quote": "USDT", "spot": False},
    }
    assert symbol_table(markets) == {"BTCUSDT": "BTC/USDT", "ETHBTC": "ETH/BTC", "1000PEPEUSDT": "1000PEPE/USDT:USDT"}


def test_ccxt_trades_become_a_batch_once_each_with_bad_ones_counted():
    from backend.models import Rejects
    from backend.sources.ccxt_trades import SeenIds, trades_batch

    def trade(i: str, **kw: object) -> dict:
        base = {"id": i, "timestamp": 1626992760000 + int(i), "price": 7.6, "amount": 2.0, "side": "sell"}
        return base | {"info": {"a": int(i), "f": 10, "l": 12}} | kw

    rejects, seen = Rejects(), SeenIds()
    batch = trades_batch(
        [trade("1"), trade("2", side="buy", info={}), trade("3", price=None), trade("4", side="?"),
         trade("5", price=float("nan")), trade("1")],
        "SUSHIUSDT", rejects, seen,
    )  # fmt: skip
    assert [(t.trade_id, t.taker_side, t.count) for t in batch.to_trades()] == [(1, "sell", 3), (2, "buy", 1)]
    assert rejects.counts == {"missing_field": 1, "bad_side": 1, "bad_price": 1}
    again = trades_batch([trade("2"), trade("6")], "SUSHIUSDT", rejects, seen)  # REST overlapping the WebSocket
    assert [t.trade_id for t in again.to_trades()] == [6]


def test_one_symbols_batches_join_into_one_the_aggregator_orders_together():
    """REST's past and the trades the stream delivered meanwhile: as one batch, an older trade the stream
    delivered late is not applied after a newer one from REST (the close would be wrong)."""
    from backend.models import Rejects
    from backend.sources.ccxt_trades import joined

    def batch(*trades: tuple[int, float, int]) -> TradeBatch:
        out = TradeBatch.from_trades([Trade("SUSHIUSDT", p, 1.0, ts, i, "buy") for ts, p, i in trades])
        out.rejects = rejects
        return out

    rejects = Rejects()
    past, held = batch((1000, 7.0, 1), (1300, 7.3, 3)), batch((1200, 7.2, 2))
    one = joined([TradeBatch.empty(), past, TradeBatch.empty(), held])
    assert [(t.ts_ms, t.price, t.trade_id) for t in one.to_trades()] == [(1000, 7.0, 1), (1300, 7.3, 3), (1200, 7.2, 2)]
    assert one.symbols == ["SUSHIUSDT"] and one.rejects is rejects
    agg = Aggregator(["1m"])
    agg.add(one)
    (candle,) = agg.open_candles()
    assert (candle.open, candle.close, candle.trades) == (7.0, 7.3, 3)  # 7.3 is the last trade by time
    assert joined([past]) is past and len(joined([])) == 0 and len(joined([TradeBatch.empty()])) == 0
    other = TradeBatch.from_trades([Trade("CTKUSDT", 1.0, 1.0, 1000, 9, "buy")])
    with pytest.raises(ValueError, match=r"batches of one symbol expected, got \['CTKUSDT', 'SUSHIUSDT'\]"):
        joined([past, other])


def test_final_candles_replace_what_the_pipeline_had_after_a_long_gap():
    """The pipeline saw a trade at 00:00 and one at 00:03, then lost the feed for long; the exchange's 00:00 …
    00:06 candles replace all it had for those minutes (each with the stream's next seq), and the forming 5m
    candle continues from them."""
    rows = klines("XRP_ETH-1m.json")[:7]
    ones = [kline_candle("XRPETH", row) for row in rows]
    agg = Aggregator(["1m", "5m"])
    agg.add(TradeBatch.from_trades([Trade("XRPETH", 0.002, 1.0, 1570752000500, 1, "buy")]))
    agg.add(TradeBatch.from_trades([Trade("XRPETH", 0.003, 1.0, 1570752180500, 2, "buy")]))
    before = agg.drain(0, force=True)
    assert [(c.interval, c.open_time, c.seq, c.closed, c.volume) for c in before] == [
        ("1m", 1570752000000, 1, True, 1.0),
        ("1m", 1570752060000, 2, True, 0.0),
        ("1m", 1570752120000, 3, True, 0.0),
        ("1m", 1570752180000, 4, False, 1.0),
        ("5m", 1570752000000, 1, False, 2.0),
    ]
    agg.put_final("XRPETH", {"1m": rollup(ones, "1m", 60_000), "5m": rollup(ones, "5m", 300_000)})
    after = agg.drain(0, force=True)
    assert [(c.interval, c.open_time, c.seq, c.closed, c.volume) for c in after] == [
        *[("1m", row[0], 5 + i, True, row[5]) for i, row in enumerate(rows)],
        ("5m", 1570752000000, 2, True, 3478.0),  # Binance's own 5m kline
        ("5m", 1570752300000, 3, False, 2392.0),
    ]
    assert agg.late == {}
    agg.add(TradeBatch.from_trades([Trade("XRPETH", 0.003, 1.0, 1570752410000, 3, "buy")]))  # inside 00:06
    assert agg.late == {"XRPETH": 1}
