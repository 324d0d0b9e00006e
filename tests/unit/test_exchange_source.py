"""The live exchange source's pure parts: Binance's own 1m klines rolled up give Binance's own 5m klines, the
aggregator takes exchange candles as final history and carries on with trades, ccxt trades become batches
(deduplicated, bad ones counted), symbols map both ways, backoff grows with jitter."""

from __future__ import annotations

import json

import msgspec
import pytest

from backend.aggregate import Aggregator
from backend.models import Candle, Trade, TradeBatch
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


@pytest.mark.parametrize(
    ("changed", "usable"),
    [
        ({}, True),
        ({"open": float("nan")}, False),
        ({"close": float("inf")}, False),
        ({"low": 0.0}, False),
        ({"high": -1.0}, False),
        ({"high": 2.4}, False),  # under the close (2.5)
        ({"low": 2.1}, False),  # over the open (2.0)
        ({"high": 2.5, "low": 2.0}, True),  # at the close and at the open
        ({"volume": float("nan")}, False),
        ({"quote_volume": -0.1}, False),
        ({"taker_buy_volume": float("inf")}, False),
        ({"taker_buy_quote_volume": -1e-9}, False),
        ({"volume": 0.0, "quote_volume": 0.0, "taker_buy_volume": 0.0, "taker_buy_quote_volume": 0.0}, True),
        ({"trades": -1}, False),
        ({"trades": 0}, True),
    ],
)
def test_an_exchange_candle_is_usable_only_with_sane_numbers(changed: dict, usable: bool) -> None:
    from backend.sources.backfill import usable_candle

    row = [1570752000000, "2.0", "3.0", "1.0", "2.5", "10.0", 1570752059999, "25.0", 7, "4.0", "10.0", "0"]
    candle = kline_candle("XRPETH", [row[0], *map(float, row[1:6])], row)
    assert (candle.open, candle.high, candle.low, candle.close, candle.quote_volume, candle.trades) == (
        2.0, 3.0, 1.0, 2.5, 25.0, 7,
    )  # fmt: skip
    assert usable_candle(msgspec.structs.replace(candle, **changed)) is usable


def test_one_symbols_batches_join_into_one_the_aggregator_orders_together():
    """REST's past and the trades the stream delivered meanwhile: as one batch, an older trade the stream
    delivered late is not applied after a newer one from REST (the close would be wrong)."""
    from backend.models import Rejects
    from backend.sources.ccxt_trades import joined

    def batch(rejects: Rejects, *trades: tuple[int, float, int]) -> TradeBatch:
        out = TradeBatch.from_trades([Trade("SUSHIUSDT", p, 1.0, ts, i, "buy") for ts, p, i in trades])
        out.rejects = rejects
        return out

    rejects = Rejects()
    past, held = batch(rejects, (1000, 7.0, 1), (1300, 7.3, 3)), batch(Rejects(), (1200, 7.2, 2))
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


def test_symbol_table_ranks_active_then_spot_then_the_first_listed():
    swap = {"base": "BTC", "quote": "USDT", "spot": False}
    spot = {"base": "BTC", "quote": "USDT", "spot": True}
    dead_spot = spot | {"active": False}
    assert symbol_table({"BTC/USDT:USDT": swap, "BTC/USDT": spot}) == {"BTCUSDT": "BTC/USDT"}
    assert symbol_table({"BTC/USDT:USDT": swap | {"active": True}, "BTC/USDT": spot}) == {"BTCUSDT": "BTC/USDT"}
    # an active derivative wins over an inactive spot market, listed either way round
    assert symbol_table({"BTC/USDT": dead_spot, "BTC/USDT:USDT": swap}) == {"BTCUSDT": "BTC/USDT:USDT"}
    assert symbol_table({"BTC/USDT:USDT": swap, "BTC/USDT": dead_spot}) == {"BTCUSDT": "BTC/USDT:USDT"}
    dead_swap = swap | {"active": False}
    assert symbol_table({"BTC/USDT:USDT": dead_swap, "BTC/USDT": dead_spot}) == {"BTCUSDT": "BTC/USDT"}
    assert symbol_table({"BTC/USDT:USDT": swap, "BTC/USDT:BTC": swap}) == {"BTCUSDT": "BTC/USDT:USDT"}  # a tie
    # no base or no quote: no pair, and the markets after it still count
    markets = {"X": {"quote": "USDT", "spot": True}, "Y": {"base": "USDT"}, "ETH/BTC": {"base": "ETH", "quote": "BTC"}}
    assert symbol_table(markets) == {"ETHBTC": "ETH/BTC"}


def test_seen_ids_keep_the_last_size_ids_and_count_every_add():
    from backend.sources.ccxt_trades import SeenIds

    assert SeenIds().size == 20_000
    seen = SeenIds(size=2)
    assert [seen.add(k) for k in ("a", "b", "a")] == [True, True, False]
    assert seen.add("c") and seen.ids == {"b", "c"}  # the third id pushes out the oldest
    assert seen.add("a") and not seen.add("c") and seen.ids == {"c", "a"}
    assert seen.ordinal == 6  # every add, repeats too: the ids of exchanges whose ids are not numbers


@pytest.mark.parametrize(
    ("info", "raw_trades"),
    [
        ({"f": 10, "l": 12}, 3),
        ({"f": "10", "l": "10"}, 1),
        ({"f": 10, "l": 9}, 1),
        ({"f": 10, "l": 5}, 1),
        ({"f": "x", "l": 12}, 1),
        ({"f": None, "l": 12}, 1),
        ({}, 1),
    ],
)
def test_a_binance_aggregate_trade_stands_for_l_minus_f_plus_1_raw_trades_at_least_one(
    info: dict, raw_trades: int
) -> None:
    from backend.sources.ccxt_trades import _raw_trades

    assert _raw_trades(info) == raw_trades


def test_trades_whose_ids_are_no_numbers_get_increasing_ids():
    from backend.models import Rejects
    from backend.sources.ccxt_trades import SeenIds, trades_batch

    seen = SeenIds()
    trades = [
        {"id": i, "timestamp": 1618677780000 + n, "price": 0.79, "amount": 450.0, "side": "buy", "info": "no map"}
        for n, i in enumerate(["x-7", "x-8", "x-7", "9"])
    ]
    batch = trades_batch(trades, "SKLUSD", Rejects(), seen)
    assert [(t.trade_id, t.ts_ms, t.count) for t in batch.to_trades()] == [
        (1, 1618677780000, 1),
        (2, 1618677780001, 1),
        (9, 1618677780003, 1),
    ]


def test_kline_candle_is_the_whole_final_candle_with_binances_extra_fields_when_the_raw_row_matches():
    row = [1570752000000, 2.0, 3.0, 1.0, 2.5, 10.0]
    raw = [1570752000000, "2.0", "3.0", "1.0", "2.5", "10.0", 1570752059999, "25.5", 7, "4.25", "10.5"]  # 11 fields
    whole = Candle(
        "XRPETH", "1m", 1570752000000, 1570752059999, 2.0, 3.0, 1.0, 2.5, 10.0, 25.5, 7, 4.25, 10.5,
        True, 0, 1570752059999, 0,
    )  # fmt: skip
    assert kline_candle("XRPETH", row, raw) == whole
    assert kline_candle("XRPETH", row, [*raw, "0"]) == whole  # Binance's 12th field, ignored
    bare = msgspec.structs.replace(whole, quote_volume=0.0, trades=0, taker_buy_volume=0.0, taker_buy_quote_volume=0.0)
    assert kline_candle("XRPETH", row) == bare  # other exchanges: those four are 0
    assert kline_candle("XRPETH", row, raw[:10]) == bare  # a short raw row is not read
    assert kline_candle("XRPETH", row, [1570752060000, *raw[1:]]) == bare  # another minute's row
    with pytest.raises(ValueError):
        kline_candle("XRPETH", row, [*raw[:7], "many", *raw[8:]])


def _minute(t: int, o: float, h: float, lo: float, c: float, v: float, q: float, n: int, tb: float, tbq: float):
    return kline_candle("XRPETH", [t, o, h, lo, c, v], [t, o, h, lo, c, v, t + 59_999, q, n, tb, tbq])


def test_rollup_gives_whole_candles_a_periods_open_from_its_first_traded_minute():
    m = 60_000
    t0 = 1570752300000  # 00:05
    minutes = [
        _minute(t0, 2.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0, 0.0, 0.0),  # 00:05 flat: no trade
        _minute(t0 + m, 2.1, 2.6, 1.9, 2.4, 0.5, 1.25, 3, 0.25, 0.5),
        _minute(t0 + 2 * m, 2.4, 2.5, 2.2, 2.3, 1.5, 3.5, 4, 1.0, 2.25),
        _minute(t0 + 8 * m, 3.0, 3.2, 2.9, 3.1, 2.0, 6.0, 5, 1.0, 3.0),  # 00:13: the 00:10 period from mid-way
        _minute(t0 + 9 * m, 3.1, 3.4, 3.0, 3.2, 1.0, 3.25, 2, 0.5, 1.5),
        _minute(t0 + 10 * m, 3.1, 3.1, 3.1, 3.1, 0.0, 0.0, 0, 0.0, 0.0),  # 00:15 and 00:16 flat
        _minute(t0 + 11 * m, 3.3, 3.3, 3.3, 3.3, 0.0, 0.0, 0, 0.0, 0.0),
    ]
    assert rollup(minutes, "5m", 300_000) == [
        (Candle("XRPETH", "5m", t0, t0 + 5 * m - 1, 2.1, 2.6, 1.9, 2.3, 2.0, 4.75, 7, 1.25, 2.75, True, 0,
                t0 + 3 * m - 1, 0), False),
        (Candle("XRPETH", "5m", t0 + 5 * m, t0 + 10 * m - 1, 3.0, 3.4, 2.9, 3.2, 3.0, 9.25, 7, 1.5, 4.5, True, 0,
                t0 + 10 * m - 1, 0), False),
        (Candle("XRPETH", "5m", t0 + 10 * m, t0 + 15 * m - 1, 3.1, 3.1, 3.1, 3.3, 0.0, 0.0, 0, 0.0, 0.0, True, 0,
                t0 + 12 * m - 1, 0), False),
    ]  # fmt: skip
    whole = [_minute(t0 + i * m, 2.0, 2.0, 2.0, 2.0, 0.5, 1.0, 1, 0.0, 0.0) for i in range(5)]
    assert [(c.open_time, c.volume, done) for c, done in rollup(whole, "5m", 300_000)] == [(t0, 2.5, True)]
    # a first period the minutes do not cover from its start is left out; later ones from mid-way are not
    late = rollup(minutes[3:], "5m", 300_000)  # 00:13 and 00:14 left out
    assert [(c.open_time, done) for c, done in late] == [(t0 + 10 * m, False)]


def test_a_page_of_exchange_candles_is_its_usable_ones_in_the_window_and_where_the_next_starts():
    from backend.models import Rejects
    from backend.sources.backfill import page_candles

    t = 1570752000000
    rows = [[t - 60_000, 1.0, 1.0, 1.0, 1.0, 1.0], [t, 2.0, 3.0, 1.0, 2.5, 10.0],
            [t + 60_000, float("nan"), 1, 1, 1, 1], [t + 120_000, 2.0, 2.0, 2.0, 2.0, 1.0],
            [t + 180_000, 2.0, 2.0, 2.0, 2.0, 1.0]]  # fmt: skip
    raw = ["no row", ["time?", "1"], [], [t, "2", "3", "1", "2.5", "10", t + 59_999, "25.5", 7, "4.25", "10.5"],
           [t + 120_000, "2", "2", "2", "2", "1", t + 179_999, "x", 1, "0", "0"]]  # fmt: skip
    rejects = Rejects()
    candles, after = page_candles("XRPETH", rows, raw, t, t + 180_000, rejects)
    assert [(c.symbol, c.open_time, c.quote_volume, c.trades) for c in candles] == [("XRPETH", t, 25.5, 7)]
    assert after == t + 180_000  # the last row in the window, plus a minute
    assert rejects.counts == {"bad_candle": 2}  # the NaN open and the quote volume "x"
    assert page_candles("XRPETH", rows, None, t + 240_000, t + 600_000, rejects) == ([], None)
    assert page_candles("XRPETH", rows[:1], {"not": "a list"}, t - 60_000, t, rejects)[1] == t


@pytest.mark.parametrize(
    ("stamps", "since", "until", "hourly", "after"),
    [
        ([5] * 999 + [7], 0, 10**9, False, 7),  # a full page (1000): on from its newest trade
        ([None] * 1000, 0, 10**9, True, 3_600_000),  # full, but no trade with a time: the hour on
        ([5] * 999, 0, 10**9, False, None),  # one short of full: the end
        ([5] * 999, 100, 3_600_101, True, 3_600_100),  # Binance: the next hour while it ends before until
        ([5] * 999, 100, 3_600_100, True, None),  # ...and not once it reaches until
        ([], 100, 10**9, True, 3_600_100),
        ([], 100, 10**9, False, None),
    ],
)
def test_where_the_next_page_of_trades_starts(stamps: list, since: int, until: int, hourly: bool, after: int | None):
    from backend.sources.backfill import next_trades_since

    page = [{"timestamp": s} for s in stamps]
    assert next_trades_since(page, since, until, hourly) == after
