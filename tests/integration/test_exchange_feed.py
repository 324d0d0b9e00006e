"""The live exchange source through ccxt, against a local exchange replaying Binance's own capture.

``tests/exchange_server.py`` serves the BINANCE_FUTURES capture (aggTrades at
their recorded arrival times, scaled by ``SPEED``; REST aggTrades and klines as
of the replay clock) and ccxt's URLs point at it: no internet. What the source
delivers is checked against what Binance itself published in the same capture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from backend.aggregate import Aggregator
from backend.cache import CacheKeys
from backend.ingest import IngestService
from backend.models import Candle, Trade, TradeBatch, decode_message
from backend.sinks import default_sinks
from backend.sources import open_source
from backend.sources.exchange import ExchangeSource, Finals
from backend.sources.fields import iso_ms
from backend.store import make_engine, query_candles
from tests.conftest import ROOT, SAMPLES
from tests.exchange_server import Capture, CoinbaseServer, ExchangeServer, ReplayServer, RunningServer

pytestmark = pytest.mark.slow

CAPTURE = Capture.read(SAMPLES / "ws_recordings" / "BINANCE_FUTURES.ws.1.0")
SYMBOLS = {"SUSHIUSDT", "CTKUSDT", "AKROUSDT", "KEEPUSDT"}
SPEED = 8.0  # the 30 s capture in about 4 s, arrival gaps kept in proportion
CAPTURE_START_MS = 1626992740179  # the first line's subscription time
FINAL_KLINES = {e["k"]["s"]: e["k"] for _, _, e in CAPTURE.of("kline", SYMBOLS) if e["k"]["x"]}  # 22:25's, per symbol


def agg_trade(e: dict) -> Trade:
    """A Binance aggTrade event as the trade it is: taker sold when ``m``, ``l - f + 1`` raw trades."""
    return Trade(e["s"], float(e["p"]), float(e["q"]), e["T"], e["a"], "sell" if e["m"] else "buy", e["l"] - e["f"] + 1)


def capture_trades() -> list[Trade]:
    """The capture's aggTrades of SYMBOLS as the exchange sent them, in arrival order."""
    return [agg_trade(e) for _, _, e in CAPTURE.of("aggTrade", SYMBOLS)]


FEED_DEADLINE_S = 120.0  # a run takes seconds; one that stalls fails saying what it got, not at pytest's timeout


def deliver(source: ExchangeSource, until: Callable[[list[Trade]], bool]) -> tuple[list[Trade], Finals]:
    """Run ``source`` until ``until(delivered trades)``; the trades and exchange candles it delivered, in order."""
    stop = threading.Event()
    got: list[Trade] = []
    finals: Finals = []
    deadline = time.monotonic() + FEED_DEADLINE_S
    stalled = False
    for batch in source.batches(stop):
        finals.extend(source.take_finals())
        got.extend(batch.to_trades())
        if until(got):
            stop.set()
        elif time.monotonic() > deadline:
            stalled = True
            stop.set()
    if stalled:
        have = sorted((t.symbol, t.trade_id) for t in got)
        pytest.fail(f"feed stalled after {FEED_DEADLINE_S:g} s with {len(got)} trades {have}; {source.state}")
    return got, finals


def run_feed(
    server: ReplayServer, until: Callable[[list[Trade]], bool], history_s: float = 0, silence_s: float = 30
) -> tuple[ExchangeSource, list[Trade], Finals]:
    """Run a source of SYMBOLS on ``server`` until ``until(delivered trades)``: it, its trades and exchange candles."""
    urls = server.urls()
    source = ExchangeSource("binanceusdm", sorted(SYMBOLS), history_s=history_s, silence_s=silence_s, urls=urls)
    got, finals = deliver(source, until)
    return source, got, finals


def distinct(n: int) -> Callable[[list[Trade]], bool]:
    return lambda got: len({(t.symbol, t.trade_id) for t in got}) >= n


def forming_updates(got: list[Trade], agg: Aggregator) -> dict[tuple[str, int], tuple]:
    """Feed ``got`` one trade at a time; after each, the trade's 1m candle keyed by its last raw trade id.

    That is our candle at the moment of every kline update whose ``L`` (last raw trade) ends an aggTrade.
    """
    raw_last = {(e["s"], e["a"]): e["l"] for _, _, e in CAPTURE.of("aggTrade", SYMBOLS)}
    ours: dict[tuple[str, int], tuple] = {}
    for t in got:
        agg.add(TradeBatch.from_trades([t]))
        (candle,) = [c for c in agg.open_candles() if c.symbol == t.symbol and c.interval == "1m"]
        ours[(t.symbol, raw_last[(t.symbol, t.trade_id)])] = (candle.open_time, fields(candle))
    return ours


def check_klines(ours: dict[tuple[str, int], tuple], since_ms: int) -> int:
    """Every kline update of a minute opening after ``since_ms`` that ``ours`` has, equal field by field."""
    checked = 0
    for _, _, e in CAPTURE.of("kline", SYMBOLS):
        k = e["k"]
        if k["t"] <= since_ms or (k["s"], k["L"]) not in ours:
            continue
        assert ours[(k["s"], k["L"])] == (k["t"], pytest.approx(kline_fields(k), rel=1e-12)), k
        checked += 1
    return checked


def fields(c: Candle) -> tuple:
    return (c.open, c.high, c.low, c.close, c.volume, c.quote_volume, c.trades, c.taker_buy_volume,
            c.taker_buy_quote_volume)  # fmt: skip


def kline_fields(k: dict) -> tuple:
    return (float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"]), float(k["v"]), float(k["q"]), k["n"],
            float(k["V"]), float(k["Q"]))  # fmt: skip


def candles_of(trades: list[Trade], intervals: list[str]) -> list[Candle]:
    agg = Aggregator(intervals)
    agg.add(TradeBatch.from_trades(trades))
    out = agg.take_closed() + agg.open_candles()
    return sorted(out, key=lambda c: (c.symbol, c.interval, c.open_time))


def test_candles_equal_binance_klines_on_every_update():
    expected = capture_trades()
    assert len(expected) == 91
    with RunningServer(ExchangeServer(CAPTURE, SYMBOLS, speed=SPEED)) as server:
        source, got, finals = run_feed(server, distinct(len(expected)))
    # the exchange's trades, each once, with id, taker side and raw-trade count, per symbol in the exchange's order
    for symbol in SYMBOLS:
        assert [t for t in got if t.symbol == symbol] == [t for t in expected if t.symbol == symbol]
    assert source.rejects.counts == {}
    assert source.state.reconnects == 0 and source.state.state == "connected"
    assert source.state.symbols == {
        "SUSHIUSDT": "SUSHI/USDT:USDT",
        "CTKUSDT": "CTK/USDT:USDT",
        "AKROUSDT": "AKRO/USDT:USDT",
        "KEEPUSDT": "KEEP/USDT:USDT",
    }

    assert finals == []  # no history asked for
    # a minute begun before the capture holds trades it never saw: every update of the others is checked
    assert check_klines(forming_updates(got, Aggregator(["1m"])), CAPTURE_START_MS) == 15


def test_a_dropped_connection_reconnects_and_backfills_to_the_uninterrupted_series():
    expected = capture_trades()
    with RunningServer(ExchangeServer(CAPTURE, SYMBOLS, speed=SPEED, drop_after=30)) as server:
        source, got, _ = run_feed(server, distinct(len(expected)))
        requests = list(server.requests)
    assert source.state.disconnects == 1 and source.state.reconnects == 1
    assert source.state.backfill_trades > 0  # the missed trades came over REST
    assert any(r.startswith("/fapi/v1/aggTrades?") for r in requests)
    assert sorted(got, key=lambda t: (t.symbol, t.ts_ms, t.trade_id)) == sorted(
        expected, key=lambda t: (t.symbol, t.ts_ms, t.trade_id)
    )
    assert candles_of(got, ["1s", "1m", "5m"]) == candles_of(expected, ["1s", "1m", "5m"])


def test_a_stream_gone_quiet_after_a_drop_is_judged_silent_and_filled_over_rest():
    """The connection drops after 30 trades and the stream sends none after: no trade ever arrives to start a
    backfill. The feed fills its gaps once reconnected and quiet, is judged silent again (a second from the
    reconnect), reconnects, fills again: every trade once, KEEPUSDT's too (none before the drop)."""
    expected = capture_trades()
    assert "KEEPUSDT" not in {t.symbol for t in expected[:30]}
    with RunningServer(ExchangeServer(CAPTURE, SYMBOLS, speed=SPEED, drop_after=30, quiet_after=30)) as server:
        source, got, _ = run_feed(server, distinct(len(expected)), silence_s=1)
        sent = server.sent
    assert sent == 30  # the rest came over REST only
    assert source.state.reconnects >= 1 and source.state.backfill_trades >= len(expected) - 30
    assert sorted(got, key=lambda t: (t.symbol, t.ts_ms, t.trade_id)) == sorted(
        expected, key=lambda t: (t.symbol, t.ts_ms, t.trade_id)
    )
    assert candles_of(got, ["1s", "1m", "5m"]) == candles_of(expected, ["1s", "1m", "5m"])


def test_a_market_gone_quiet_reconnects_once_then_stays_connected_without_asking_again():
    """``silence_s`` of 1 s, then the replay is over: the silence drops the connection once, the gap fill finds no
    trade it missed (a quiet market, not a stalled stream), and the feed stays connected: no reconnect, and no
    REST round per symbol, every second after."""
    expected = capture_trades()
    marks: list[tuple[float, int]] = []  # when every trade had come, and the disconnects then

    def until(got: list[Trade]) -> bool:
        if not marks and len({(t.symbol, t.trade_id) for t in got}) >= len(expected):
            marks.append((time.monotonic(), source.state.disconnects))
        return bool(marks) and time.monotonic() - marks[0][0] > 12

    with RunningServer(ExchangeServer(CAPTURE, SYMBOLS, speed=SPEED)) as server:
        source = ExchangeSource("binanceusdm", sorted(SYMBOLS), history_s=0, silence_s=1, urls=server.urls())
        got, _ = deliver(source, until)
        fills = [r for r in server.requests if r.startswith("/fapi/v1/aggTrades?")]
    assert source.state.disconnects == marks[0][1] + 1 == source.state.reconnects
    assert source.state.state == "connected" and len(fills) == len(SYMBOLS)  # the one fill: a request per symbol
    assert sorted(got, key=lambda t: (t.symbol, t.trade_id)) == sorted(expected, key=lambda t: (t.symbol, t.trade_id))


def test_a_quiet_market_gets_its_history_and_is_connected_without_waiting_for_a_trade():
    """Joining 25 s into the capture, on a stream that sends nothing: the closed 22:25 klines and the 22:26
    trades so far come over REST, as of the exchange's clock (its ``/time``; the local one is years off)."""
    with RunningServer(ExchangeServer(CAPTURE, SYMBOLS, offset_s=25, quiet_after=0)) as server:  # real time
        source = ExchangeSource("binanceusdm", sorted(SYMBOLS), history_s=600, silence_s=30, urls=server.urls())
        got, finals = deliver(source, lambda _: source.state.state == "connected")
        requests = list(server.requests)
    assert server.sent == 0 and "/fapi/v1/time" in requests
    assert source.state.backfill_candles == 4
    final = FINAL_KLINES
    assert sorted(symbol for symbol, _ in finals) == sorted(final) == sorted(SYMBOLS)
    for symbol, rollups in finals:
        ((closed, complete),) = rollups["1m"]
        k = final[symbol]
        assert complete and (closed.open_time, fields(closed)) == (k["t"], pytest.approx(kline_fields(k), rel=1e-12))
    # 22:26 so far (25 s into the capture is 22:26:05), each symbol's trades once and in the exchange's order
    after = [t for t in capture_trades() if t.ts_ms >= MINUTE]
    assert got
    for symbol in SYMBOLS:
        mine = [t for t in got if t.symbol == symbol]
        assert mine == [t for t in after if t.symbol == symbol][: len(mine)]


def test_unusable_exchange_candles_are_counted_and_left_out_and_the_rest_is_history():
    """The klines answer holds a NaN open (ccxt passes it through), a quote volume that is no number, a high
    below the close, a row without a time and one that is no row: the three candles are counted as
    ``bad_candle`` and left out (a final candle is kept for good), the other symbols' are history."""
    minute = MINUTE - 60_000  # 22:25, the closed minute of the capture
    good = FINAL_KLINES

    def row(symbol: str, **changed: object) -> list:
        k = good[symbol] | changed
        return [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"], k["V"], k["Q"], "0"]

    patch = {
        "SUSHIUSDT": [row("SUSHIUSDT", o="NaN"), ["22:25", "1", "1", "1", "1", "1"], "no row"],
        "CTKUSDT": [row("CTKUSDT", q="many")],
        "AKROUSDT": [row("AKROUSDT", h=good["AKROUSDT"]["l"])],  # the high at the low: under open and close
    }
    assert good["AKROUSDT"]["h"] != good["AKROUSDT"]["l"]
    server = ExchangeServer(CAPTURE, SYMBOLS, offset_s=25, quiet_after=0, kline_patch=patch)
    with RunningServer(server) as running:
        source = ExchangeSource("binanceusdm", sorted(SYMBOLS), history_s=600, silence_s=30, urls=running.urls())
        got, finals = deliver(source, lambda _: source.state.state == "connected")
    assert source.rejects.counts == {"bad_candle": 3}
    assert source.state.backfill_candles == 1 and got  # KEEPUSDT's candle; every symbol's 22:26 trades
    ((symbol, rollups),) = finals
    ((keep, complete),) = rollups["1m"]
    k = good["KEEPUSDT"]
    assert (symbol, complete, keep.open_time) == ("KEEPUSDT", True, minute)
    assert fields(keep) == pytest.approx(kline_fields(k), rel=1e-12)


def test_malformed_messages_are_counted_by_reason_and_the_feed_stays_up():
    expected = capture_trades()
    sushi = next(e for _, s, e in CAPTURE.of("aggTrade", {"SUSHIUSDT"}))
    bad = {
        5: [
            '{"e":"aggTrade","E":1626992750000,"s":"SUSHIUSDT"',  # cut short: not JSON
            _event(sushi, a=1, drop="p"),  # no price
            _event(sushi, a=2, p="NaN"),
        ]
    }
    with RunningServer(ExchangeServer(CAPTURE, SYMBOLS, speed=SPEED, inject=bad)) as server:
        source, got, _ = run_feed(server, distinct(len(expected)))
    assert [t for t in got if t.trade_id not in (1, 2)] == [t for t in got if t in expected]
    assert len({(t.symbol, t.trade_id) for t in got if t in expected}) == 91
    # ccxt itself fails on the NaN price (its Precise arithmetic): the guard counts the message it could not parse
    assert source.rejects.counts == {"bad_json": 1, "missing_field": 1, "unparseable_message": 1}
    assert source.state.disconnects == 0


def _event(event: dict, *, a: int, drop: str | None = None, **values: str) -> str:
    import json

    out = dict(event, a=a, **values)
    if drop:
        del out[drop]
    return json.dumps(out)


MINUTE = 1626992760000  # 22:26, the minute that begins inside the capture


def test_a_restart_mid_minute_backfills_the_closed_minute_and_the_forming_one_exactly():
    """Stop mid-minute, start afresh: the exchange's closed 22:25 klines and the 22:26 trades so far over REST,
    then the live ones: 22:25 is Binance's final kline (trades from before the capture included) and every
    later 22:26 update matches Binance's."""
    with RunningServer(ExchangeServer(CAPTURE, SYMBOLS, speed=SPEED)) as server:
        _, first, _ = run_feed(server, lambda got: any(t.ts_ms >= MINUTE + 4000 for t in got))
        after = [e for _, _, e in CAPTURE.of("aggTrade", SYMBOLS) if e["T"] >= MINUTE]
        source, got, finals = run_feed(server, lambda got: {t.trade_id for t in got} >= {e["a"] for e in after}, 600)
    assert any(t.ts_ms >= MINUTE for t in first)  # the first run saw part of 22:26 before it stopped
    assert source.state.backfill_candles == 4 and source.state.backfill_trades > 0
    agg = Aggregator(["1m", "5m"])
    for symbol, rollups in finals:
        agg.put_final(symbol, rollups)
    closed = {c.symbol: c for c in agg.take_closed() if c.interval == "1m"}
    final = FINAL_KLINES
    assert sorted(closed) == sorted(final) == sorted(SYMBOLS)
    for symbol, k in final.items():
        assert (closed[symbol].open_time, fields(closed[symbol])) == (k["t"], pytest.approx(kline_fields(k), rel=1e-12))
    assert check_klines(forming_updates(got, agg), MINUTE - 1) == 15
    (ctk,) = [c for c in agg.open_candles() if c.symbol == "CTKUSDT" and c.interval == "5m"]
    # one 5m candle: 22:25 as Binance published it (86 raw trades) and the 37 raw trades of 22:26 in the capture
    assert (ctk.open_time, ctk.trades) == (1626992700000, 86 + 37)


def test_a_restart_with_restored_candles_resumes_after_their_last_trade():
    """The ingest restarted with its forming candles restored (what it held when it stopped): the source fetches
    only the trades after the newest one they hold, so every 22:26 update still equals Binance's, none twice."""
    with RunningServer(ExchangeServer(CAPTURE, SYMBOLS, speed=SPEED)) as server:
        _, first, _ = run_feed(server, lambda got: any(t.ts_ms >= MINUTE + 4000 for t in got))
        restored = Aggregator(["1m", "5m"])
        ours = forming_updates(first, restored)
        after = [e for _, _, e in CAPTURE.of("aggTrade", SYMBOLS) if e["T"] >= MINUTE]
        source = ExchangeSource("binanceusdm", sorted(SYMBOLS), history_s=600, silence_s=30, urls=server.urls())
        source.continue_after(restored.last_trades())
        got, finals = deliver(source, lambda got: {t.trade_id for t in first + got} >= {e["a"] for e in after})
    assert finals == []  # restored candles: no history
    assert source.state.backfill_candles == 0 and source.state.backfill_trades > 0
    assert not {(t.symbol, t.trade_id) for t in got} & {(t.symbol, t.trade_id) for t in first}  # nothing twice
    ours |= forming_updates(got, restored)
    assert check_klines(ours, CAPTURE_START_MS) == 15


@pytest.mark.integration
def test_the_ingest_on_a_live_feed_stores_the_exchange_candles_and_reports_the_feed(redis_client, settings):
    settings = settings.model_copy(
        update=dict(intervals=("1m", "5m"), source="exchange:binanceusdm", symbols=tuple(sorted(SYMBOLS)))
    )
    keys = CacheKeys(settings.redis_prefix)
    engine = make_engine(settings.effective_database_url())
    # joining 25 s into the capture, in the minute that began inside it (22:26): its first trades come over REST
    with RunningServer(ExchangeServer(CAPTURE, SYMBOLS, speed=SPEED, offset_s=25)) as server:
        source = open_source(settings.source, symbols=settings.symbols, backfill_s=600, exchange_urls=server.urls())
        service = IngestService(settings, source, redis_client, default_sinks(settings, redis_client, engine))
        stop = threading.Event()
        thread = threading.Thread(target=service.run, args=(stop,))
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(
                redis_client.zcard(keys.recent(s, "1m")) for s in SYMBOLS
            ):  # the 22:25 candles, backfilled with the first trade (or after a second of quiet)
                time.sleep(0.1)
            while time.monotonic() < deadline and service.aggregator.trades_in < 33:  # every 22:26 trade
                time.sleep(0.1)
        finally:
            stop.set()
            thread.join(30)
            service.close()
    final = FINAL_KLINES
    for symbol, k in final.items():
        (stored,) = query_candles(engine, symbol, "1m", limit=10)
        assert (stored.open_time, fields(stored)) == (k["t"], pytest.approx(kline_fields(k), rel=1e-12))
    stats = {k.decode(): json.loads(v) for k, v in redis_client.hgetall(keys.stats("ingest")).items()}
    assert stats["source"] == "exchange:binanceusdm" and stats["live"] is False  # 2021 trades: event time only
    assert stats["feed"]["state"] == "connected" and stats["feed"]["backfill_candles"] == 4
    assert stats["feed"]["symbols"]["SUSHIUSDT"] == "SUSHI/USDT:USDT" and stats["rejected_trades"] == {}
    last = {e["k"]["s"]: e["k"] for _, _, e in CAPTURE.of("kline", {"SUSHIUSDT"}) if e["k"]["t"] == MINUTE}
    forming = decode_message(redis_client.get(keys.latest("SUSHIUSDT", "1m")))
    assert (forming.open_time, fields(forming)) == (MINUTE, pytest.approx(kline_fields(last["SUSHIUSDT"]), rel=1e-12))
    engine.dispose()


COINBASE = Capture.read(SAMPLES / "ws_recordings" / "COINBASE.ws.28.0")
PRODUCTS = {"DASH-BTC", "SKL-USD"}


def test_coinbase_through_the_same_source_gives_the_captured_trades_and_their_candles():
    """Another exchange, no code of its own: Coinbase's ``match`` messages through ccxt.pro.coinbaseexchange give
    every trade, with the taker side (the opposite of Coinbase's ``side``, the maker's), and their candles."""
    expected = [
        Trade(m["product_id"].replace("-", ""), float(m["price"]), float(m["size"]), iso_ms(m["time"]),
              m["trade_id"], "buy" if m["side"] == "sell" else "sell")
        for _, m in COINBASE.matches(PRODUCTS)
    ]  # fmt: skip
    assert len(expected) == 67
    with RunningServer(CoinbaseServer(COINBASE, PRODUCTS, speed=SPEED)) as server:
        source = ExchangeSource("coinbaseexchange", ["DASHBTC", "SKLUSD"], history_s=0, urls=server.urls())
        got, _ = deliver(source, lambda got: len(got) >= len(expected))
    assert source.state.symbols == {"DASHBTC": "DASH/BTC", "SKLUSD": "SKL/USD"}
    assert source.rejects.counts == {}
    for symbol in ("DASHBTC", "SKLUSD"):  # each symbol's trades in the exchange's order
        assert [t for t in got if t.symbol == symbol] == [t for t in expected if t.symbol == symbol]
    (first,) = [t for t in got if t.trade_id == 1568268]  # Coinbase: side "sell" (the maker sold), 450 @ 0.791
    assert (first.symbol, first.price, first.qty, first.taker_side) == ("SKLUSD", 0.791, 450.0, "buy")
    assert candles_of(got, ["1s", "1m"]) == candles_of(expected, ["1s", "1m"])
    (dash,) = [c for c in candles_of(got, ["1m"]) if c.symbol == "DASHBTC" and c.open_time == 1618677780000]
    assert (dash.open, dash.close, dash.trades) == (0.00620564, 0.0061759, 4)


def test_binance_spot_the_readme_default_maps_its_symbols_and_delivers_its_aggregate_trades():
    """``exchange:binance`` (spot: other URLs, markets and WebSocket path than futures) on its own capture."""
    spot = Capture.read(SAMPLES / "ws_recordings" / "BINANCE.ws.1.0")
    symbols = {"NKNUSDT", "LRCBTC", "BLZETH"}
    expected = [agg_trade(e) for _, _, e in spot.of("aggTrade", symbols)]
    assert [(t.symbol, t.trade_id) for t in expected] == [("NKNUSDT", 15683430), ("LRCBTC", 9213679)]
    with RunningServer(ExchangeServer(spot, symbols, speed=SPEED, market="spot")) as server:
        source = ExchangeSource("binance", sorted(symbols), history_s=0, urls=server.urls())
        got, _ = deliver(source, lambda got: len(got) >= len(expected))
    assert source.state.symbols == {"BLZETH": "BLZ/ETH", "LRCBTC": "LRC/BTC", "NKNUSDT": "NKN/USDT"}
    assert sorted(got, key=lambda t: t.trade_id) == sorted(expected, key=lambda t: t.trade_id)
    assert source.rejects.counts == {}


def feeds(*args: str, urls: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CANDLES_EXCHANGE_URLS=json.dumps(urls or {}))
    return subprocess.run(
        [sys.executable, "-m", "backend", "feeds", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_feeds_command_lists_exchanges_and_an_exchanges_symbols():
    listed = feeds()
    assert listed.returncode == 0
    names = listed.stdout.splitlines()[1].split(", ")
    assert {"binance", "binanceusdm", "coinbaseexchange", "kraken", "bybit", "okx"} <= set(names)
    unknown = feeds("--exchange", "nope")
    assert (unknown.returncode, unknown.stderr) == (
        2,
        "error: unknown exchange 'nope': `python -m backend feeds` lists them\n",
    )
    with RunningServer(ExchangeServer(CAPTURE, SYMBOLS)) as server:
        symbols = feeds("--exchange", "binanceusdm", urls=server.urls())
    assert symbols.returncode == 0, symbols.stderr
    assert symbols.stdout.splitlines() == [
        "AKROUSDT\tAKRO/USDT:USDT",
        "CTKUSDT\tCTK/USDT:USDT",
        "KEEPUSDT\tKEEP/USDT:USDT",
        "SUSHIUSDT\tSUSHI/USDT:USDT",
    ]
    assert symbols.stderr == "4 symbols on binanceusdm\n"
