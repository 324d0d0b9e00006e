"""Trade sources: every reader on real exchange data, bad input by reason and line, simulator, replay."""

from __future__ import annotations

import gzip
import json
import threading
import time
import zipfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from backend.aggregate import Aggregator
from backend.models import MIN_TS_MS, Rejects, Trade, TradeBatch, now_ms
from backend.sources import SPEC_HELP, open_source, source_help
from backend.sources.formats import (
    DEFAULT_CHUNK,
    FORMATS,
    csv_blocks,
    csv_columns,
    detect_format,
    format_help,
    format_table,
    read_timed,
    read_trades,
)
from backend.sources.replay import ReplaySource
from backend.sources.simulator import Simulator
from tests.conftest import ROOT, SAMPLES

XRPETH = SAMPLES / "binance_xrpeth_2019" / "XRP_ETH-aggtrades.json.gz"
KRAKEN = SAMPLES / "kraken_xbtusdt_2025" / "http_trades.json"
KRAKEN_OHLC = SAMPLES / "kraken_xbtusdt_2025" / "http_ohlc.json"
WS = SAMPLES / "ws_recordings"
T0 = 1_735_689_600_000  # 2025-01-01 00:00 UTC


def read_all(path: Path, fmt: str | None = None, **kw: object) -> tuple[list[Trade], Rejects, Rejects]:
    rejects, skipped = Rejects(), Rejects()
    batches = list(read_trades(path, fmt, rejects=rejects, skipped=skipped, **kw))  # type: ignore[arg-type]
    for b in batches:
        assert len(b) <= kw.get("chunk", DEFAULT_CHUNK)  # type: ignore[operator]
        assert b.rejects is rejects
    return [t for b in batches for t in b.to_trades()], rejects, skipped


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------- real data


def test_ccxt_json_binance_aggtrades_use_the_exact_info_payload() -> None:
    trades, rejects, _ = read_all(XRPETH)
    raw = json.loads(gzip.decompress(XRPETH.read_bytes()))
    assert len(trades) == len(raw) == 12_477 and rejects.total == 0
    assert trades[0] == Trade("XRPETH", 0.00141342, 23.0, 1570752011620, 13519807, "sell", 1)
    assert trades[3].taker_side == "buy"  # m false: the buyer was the taker
    assert sum(t.count for t in trades) == sum(r["info"]["l"] - r["info"]["f"] + 1 for r in raw)
    assert sum(t.taker_side == "sell" for t in trades) == sum(r["info"]["m"] for r in raw)
    assert [t.trade_id for t in trades] == [r["info"]["a"] for r in raw]


def test_ccxt_json_without_info_uses_ccxt_fields(tmp_path: Path) -> None:
    rec = {"id": "77", "timestamp": T0, "price": 97000.5, "amount": 0.25, "side": "buy", "symbol": "BTC/USDT"}
    no_id = {**rec, "id": "abc-def", "side": "sell"}
    path = write(tmp_path / "trades.json", json.dumps([rec, no_id]))
    trades, rejects, _ = read_all(path)
    assert trades == [
        Trade("BTCUSDT", 97000.5, 0.25, T0, 77, "buy"),
        Trade("BTCUSDT", 97000.5, 0.25, T0, 2, "sell"),  # a non-numeric id: the record number keeps file order
    ]
    assert rejects.total == 0


def test_kraken_rest_trades() -> None:
    trades, rejects, _ = read_all(KRAKEN)
    raw = json.loads(KRAKEN.read_text(), parse_float=Decimal)["result"]["XBTUSDT"]
    assert len(trades) == 1000 and rejects.total == 0
    assert trades[0] == Trade("XBTUSDT", 105433.6, 0.00027625, 1762795433971, 10218208, "buy")
    assert trades[-1] == Trade("XBTUSDT", 105899.4, 0.00009443, 1762820035982, 10219207, "sell")
    assert [t.ts_ms for t in trades] == [int(r[2] * 1000) for r in raw]  # floor of the exact decimal
    assert sum(t.taker_side == "buy" for t in trades) == sum(r[3] == "b" for r in raw)


def test_kraken_trades_reproduce_krakens_own_1m_candles() -> None:
    """Every minute fully covered by the trades: volume, count, OHLC exact; vwap within Kraken's 0.1 truncation."""
    agg = Aggregator(["1m"])
    for batch in read_trades(KRAKEN, rejects=Rejects()):
        agg.add(batch)
    ours = {c.open_time // 1000: c for c in agg.drain(0) + agg.open_candles()}
    first = min(ours)  # the first minute with trades is only partly covered by the list
    checked = 0
    for t, o, h, lo, c, vwap, vol, count in json.loads(KRAKEN_OHLC.read_text())["result"]["XBTUSDT"]:
        if t not in ours or t == first or count == 0:
            continue
        mine = ours[t]
        assert mine.trades == count
        assert mine.volume == pytest.approx(float(vol), abs=1e-12)
        assert (mine.open, mine.high, mine.low, mine.close) == (float(o), float(h), float(lo), float(c))
        assert -1e-6 <= mine.quote_volume / mine.volume - float(vwap) < 0.1 + 1e-6  # truncated to 0.1
        checked += 1
    assert checked > 250


def test_ws_capture_binance_futures_aggtrades_and_skipped_streams() -> None:
    path = WS / "BINANCE_FUTURES.ws.1.0"
    trades, rejects, skipped = read_all(path)
    assert len(trades) == 91 and rejects.total == 0
    assert skipped.counts == {"bookTicker": 613, "depthUpdate": 764, "kline": 67}
    assert trades[0] == Trade("CTKUSDT", 1.011, 10.0, 1626992741421, 16599292, "buy", 1)
    assert {t.symbol for t in trades} == {"CTKUSDT", "AKROUSDT", "SUSHIUSDT", "KEEPUSDT"}
    assert max(t.count for t in trades) > 1
    (_, clock), *_ = read_timed(path, rejects=Rejects())
    assert clock[0] == 1626992742289  # the receive time, for replay pacing


def test_ws_capture_reproduces_binance_kline_updates() -> None:
    """Each kline update that ends on an aggTrade boundary equals the capture's aggTrades, field by field."""
    path = WS / "BINANCE_FUTURES.ws.1.0"
    lines = path.read_text().splitlines()
    start_ms = int(float(lines[0].rsplit(" ", 1)[1]) * 1000)
    trades = sorted(read_all(path)[0], key=lambda t: (t.ts_ms, t.trade_id))
    checked = 0
    for line in lines[1:]:
        if '"e":"kline"' not in line:
            continue
        k = json.loads(line.split(": ", 1)[1])["data"]["k"]
        minute = [t for t in trades if t.symbol == k["s"] and k["t"] <= t.ts_ms < k["t"] + 60_000]
        counts = np.cumsum([t.count for t in minute])
        if k["t"] < start_ms or k["n"] not in counts:
            continue  # the minute began before the capture, or the update split an aggregate trade
        sel = minute[: int(np.searchsorted(counts, k["n"])) + 1]
        assert (sel[0].price, max(t.price for t in sel), min(t.price for t in sel), sel[-1].price) == tuple(
            float(k[f]) for f in "ohlc"
        )
        assert sum(t.qty for t in sel) == pytest.approx(float(k["v"]), abs=1e-9)
        assert sum(t.qty * t.price for t in sel) == pytest.approx(float(k["q"]), abs=1e-6)
        assert sum(t.qty for t in sel if t.taker_side == "buy") == pytest.approx(float(k["V"]), abs=1e-9)
        checked += 1
    assert checked >= 15


def test_ws_capture_binance_spot_and_us() -> None:
    trades, rejects, skipped = read_all(WS / "BINANCE.ws.1.0")
    assert len(trades) == 2 and rejects.total == 0
    assert trades[0] == Trade("NKNUSDT", 0.3528, 58.0, 1633998523963, 15683430, "buy", 1)
    assert skipped.counts == {"depthUpdate": 177, "bookTicker": 84, "kline": 2}  # spot bookTicker has no "e"
    trades, rejects, _ = read_all(WS / "BINANCE_US.ws.1.0")
    assert len(trades) == 11 and rejects.total == 0
    assert trades[0] == Trade("OMGBUSD", 13.8048, 2.1, 1633998288467, 425085, "buy", 1)


def test_ws_capture_coinbase_matches() -> None:
    trades, rejects, skipped = read_all(WS / "COINBASE.ws.28.0")
    assert len(trades) == 107 and rejects.total == 0  # 97 match + 10 last_match
    # side is the maker's: a resting sell order was hit, so the taker bought
    assert trades[0] == Trade("BANDGBP", 14.7775, 0.04, 1618677810244, 881613, "buy", 1)
    assert "SKLUSD" in {t.symbol for t in trades}
    assert skipped.counts["sent"] == 3 and skipped.counts["l2update"] == 9719
    sells = sum(1 for t in trades if t.taker_side == "sell")
    assert 0 < sells < len(trades)


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        (XRPETH, "ccxt_json"),
        (KRAKEN, "kraken_json"),
        (WS / "BINANCE.ws.1.0", "ws_capture"),
        (WS / "BINANCE_FUTURES.ws.1.0", "ws_capture"),
        (WS / "BINANCE_US.ws.1.0", "ws_capture"),
        (WS / "COINBASE.ws.28.0", "ws_capture"),
    ],
)
def test_detect_format_of_the_samples(path: Path, fmt: str) -> None:
    assert detect_format(path) == fmt


# ---------------------------------------------------------------- CSV formats

TRADES_ROWS = "1,96998.91,0.00148,143.5583868,{t0},True,True\n2,96999.44,0.00108,104.75,{t1},False,True\n"
AGG_ROWS = "10,96998.91,0.00148,100,102,{t0},true,true\n11,96999.44,0.00108,103,103,{t1},false,true\n"


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("micros", [True, False])
def test_binance_trades_csv(tmp_path: Path, header: bool, micros: bool) -> None:
    scale = 1000 if micros else 1  # data.binance.vision spot files since 2025 are in microseconds
    text = TRADES_ROWS.format(t0=T0 * scale, t1=(T0 + 5) * scale + 999 * (scale > 1))
    if header:
        text = "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n" + text
    path = write(tmp_path / "BTCUSDT-trades-2025-01-01.csv", text)
    assert detect_format(path) == "binance_trades_csv"
    trades, rejects, _ = read_all(path)
    assert rejects.total == 0
    assert trades == [
        Trade("BTCUSDT", 96998.91, 0.00148, T0, 1, "sell"),
        Trade("BTCUSDT", 96999.44, 0.00108, T0 + 5, 2, "buy"),
    ]


def test_binance_trades_csv_without_best_match_column(tmp_path: Path) -> None:
    path = write(tmp_path / "ETHUSDT-trades-2025-01-01.csv", f"7,3600.5,1.5,5400.75,{T0},False\n")
    assert detect_format(path) == "binance_trades_csv"
    assert read_all(path)[0] == [Trade("ETHUSDT", 3600.5, 1.5, T0, 7, "buy")]


@pytest.mark.parametrize("best_match", [True, False])
def test_binance_aggtrades_csv_counts_raw_trades(tmp_path: Path, best_match: bool) -> None:
    text = AGG_ROWS.format(t0=T0, t1=T0 + 5)
    if not best_match:
        text = "\n".join(line.rsplit(",", 1)[0] for line in text.splitlines()) + "\n"
    path = write(tmp_path / "BTCUSDT-aggTrades-2025-01-01.csv", text)
    assert detect_format(path) == "binance_aggtrades_csv"
    trades, rejects, _ = read_all(path)
    assert rejects.total == 0
    assert trades == [
        Trade("BTCUSDT", 96998.91, 0.00148, T0, 10, "sell", 3),
        Trade("BTCUSDT", 96999.44, 0.00108, T0 + 5, 11, "buy", 1),
    ]


def test_binance_csv_symbol_from_argument_and_compressed_files(tmp_path: Path) -> None:
    text = TRADES_ROWS.format(t0=T0, t1=T0 + 5)
    plain = write(tmp_path / "dump.csv", text)
    with pytest.raises(ValueError, match="cannot tell the symbol"):
        read_trades(plain, "binance_trades_csv", rejects=Rejects())
    assert {t.symbol for t in read_all(plain, "binance_trades_csv", symbol="sol/usdt")[0]} == {"SOLUSDT"}
    gz = tmp_path / "BTCUSDT-trades-2025-01-01.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    zipped = tmp_path / "BTCUSDT-trades-2025-01-01.zip"  # as data.binance.vision ships them
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("BTCUSDT-trades-2025-01-01.csv", text)
    for path in (gz, zipped):
        assert detect_format(path) == "binance_trades_csv"
        assert [t.trade_id for t in read_all(path)[0]] == [1, 2]


def test_plain_csv_with_and_without_optional_columns(tmp_path: Path) -> None:
    full = write(tmp_path / "a.csv", f"ts_ms,symbol,price,qty,side,trade_id\n{T0},btc-usdt,97000,0.5,buy,42\n")
    assert detect_format(full) == "plain_csv"
    assert read_all(full)[0] == [Trade("BTCUSDT", 97000.0, 0.5, T0, 42, "buy")]
    short = write(tmp_path / "b.csv", f"{T0},ETHUSDT,3600,2\n{T0},ETHUSDT,3601,1\n{T0 + 1},ETHUSDT,3602,1\n")
    assert detect_format(short) == "plain_csv"
    trades = read_all(short)[0]
    assert [t.trade_id for t in trades] == [1, 2, 3]  # no ids: the line number keeps file order
    assert {t.taker_side for t in trades} == {"sell"}  # unknown side counts as a sell


def test_chunks_are_bounded_and_keep_file_order(tmp_path: Path) -> None:
    rows = "".join(f"{T0 + i},{'BTCUSDT' if i % 3 else 'ETHUSDT'},{100 + i},1,sell,{i}\n" for i in range(2500))
    path = write(tmp_path / "p.csv", rows)
    batches = list(read_trades(path, rejects=Rejects(), chunk=1000))
    assert [len(b) for b in batches] == [1000, 1000, 500]
    trades = [t for b in batches for t in b.to_trades()]
    assert [t.trade_id for t in trades] == list(range(2500))
    assert trades[0].symbol == "ETHUSDT" and trades[1].symbol == "BTCUSDT"


# ---------------------------------------------------------------- bad input

FAR_FUTURE = now_ms() + 10 * 86_400_000
BAD_PLAIN = {  # line number → (line, reason)
    3: (f"{T0},BTCUSDT,nan,1,buy,3", "bad_price"),
    4: (f"{T0},BTCUSDT,-5,1,buy,4", "bad_price"),
    5: (f"{T0},BTCUSDT,0,1,buy,5", "bad_price"),
    6: (f"{T0},BTCUSDT,97000,-1,buy,6", "bad_qty"),
    7: (f"{T0},BTCUSDT,97000,0,buy,7", "bad_qty"),
    8: (f"{T0},BTCUSDT,97000,inf,buy,8", "bad_qty"),
    9: (f"{MIN_TS_MS - 1},BTCUSDT,97000,1,buy,9", "ts_too_old"),
    10: (f"{FAR_FUTURE},BTCUSDT,97000,1,buy,10", "ts_in_future"),
    11: (f"{T0},BTC$USDT,97000,1,buy,11", "bad_symbol"),
    12: (f"{T0},BTCUSDT", "truncated"),
    13: (f"{T0},BTCUSDT,abc,1,buy,13", "not_numeric"),
    14: (f"{T0},BTCUSDT,97000,1,buy,14,extra", "too_many_fields"),
    15: (f"{T0},BTCUSDT,97000,1,maybe,15", "bad_side"),
    16: (f"{T0}.5,BTCUSDT,97000,1,buy,16", "not_numeric"),
    17: (f"{T0},BTCUSDT,inf,1,buy,17", "bad_price"),
    18: (f"{T0},BTCUSDT,-inf,1,buy,18", "bad_price"),
}


def bad_plain_csv(path: Path, n_lines: int = 20) -> tuple[Path, dict[int, str]]:
    """A header, then good rows (trade id = line number) with the bad ones at their lines."""
    lines = ["ts_ms,symbol,price,qty,side,trade_id"]
    for line in range(2, n_lines + 1):
        lines.append(BAD_PLAIN[line][0] if line in BAD_PLAIN else f"{T0 + line},BTCUSDT,{97000 + line},0.5,sell,{line}")
    return write(path, "\n".join(lines) + "\n"), {line: reason for line, (_, reason) in BAD_PLAIN.items()}


def expected_lines(bad: dict[int, str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for line, reason in sorted(bad.items()):
        out.setdefault(reason, []).append(line)
    return out


def test_bad_rows_are_counted_by_reason_with_their_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, bad = bad_plain_csv(tmp_path / "bad.csv")
    with caplog.at_level("WARNING", logger="backend.sources.formats"):
        trades, rejects, _ = read_all(path)
    want = expected_lines(bad)
    assert len(caplog.records) == len(want)  # logged once per reason (and minute), counted always
    assert rejects.counts == {reason: len(lines) for reason, lines in want.items()}
    assert rejects.examples == want
    assert [t.trade_id for t in trades] == [line for line in range(2, 21) if line not in bad]
    assert trades[0] == Trade("BTCUSDT", 97002.0, 0.5, T0 + 2, 2, "sell")
    assert "bad_price: 5 (lines 3, 4, 5, 17, 18)" in rejects.summary()


@pytest.mark.parametrize("block_bytes", [1 << 16, 1 << 23])
def test_bad_rows_in_a_large_file_are_isolated_without_losing_good_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    """Fast path + halving, over one block or many: every good row, every bad one at its line."""
    monkeypatch.setattr(csv_blocks, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(5)
    n = 60_000
    lines = [f"{T0 + i},{'BTCUSDT' if i % 2 else 'ETHUSDT'},{1000 + i % 97},0.5,buy,{i}" for i in range(n)]
    bad_at = sorted(rng.choice(n, 12, replace=False).tolist())
    samples = list(BAD_PLAIN.values())
    for k, i in enumerate(bad_at):
        lines[i] = samples[k % len(samples)][0]
    path = write(tmp_path / "big.csv", "\n".join(lines))  # no final newline either
    trades, rejects, _ = read_all(path)
    assert len(trades) == n - len(bad_at)
    assert sum(rejects.counts.values()) == len(bad_at)
    first_bad = {}
    for k, i in enumerate(bad_at):
        first_bad.setdefault(samples[k % len(samples)][1], []).append(i + 1)
    assert rejects.examples == {r: v[:5] for r, v in first_bad.items()}
    assert [t.trade_id for t in trades] == [i for i in range(n) if i not in set(bad_at)]


def test_closing_a_reader_early_stops_its_worker_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_blocks, "BLOCK_BYTES", 1 << 12)
    path = write(tmp_path / "p.csv", "".join(f"{T0 + i},BTCUSDT,{100 + i},1\n" for i in range(20_000)))
    before = threading.active_count()
    reader = read_trades(path, rejects=Rejects(), chunk=100)
    assert len(next(reader)) == 100
    assert threading.active_count() > before  # blocks are parsed on worker threads
    reader.close()
    assert threading.active_count() == before


@pytest.mark.parametrize("engine", ["line_by_line", "pandas"])
def test_every_parse_path_agrees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str) -> None:
    """pyarrow (default), pandas (without pyarrow) and the line-by-line parse give the same trades and rejects."""
    plain, _ = bad_plain_csv(tmp_path / "bad.csv", n_lines=200)
    first_last = [(i % 3 + 1, i % 3 + 1 + i % 2 - 2 * (i % 6 == 5)) for i in range(300)]
    rows = [f"{i},{100 + i % 7}.5,0.25,{f},{la},{T0 + i},{i % 2 == 0},True" for i, (f, la) in enumerate(first_last)]
    agg = write(tmp_path / "BTCUSDT-aggTrades-2025-01-01.csv", "\n".join(rows) + "\n")
    expected = [read_all(plain), read_all(agg)]
    other = (lambda *_: None) if engine == "line_by_line" else csv_columns.columns_pandas
    monkeypatch.setattr(csv_columns, "columns", other)
    for (trades, rejects, _), path in zip(expected, (plain, agg), strict=True):
        again = read_all(path)
        assert again[0] == trades
        assert (again[1].counts, again[1].examples) == (rejects.counts, rejects.examples)
    assert expected[1][1].counts == {"bad_count": 50}  # last < first on every sixth row


def test_bad_binance_rows_keep_line_numbers_after_the_header(tmp_path: Path) -> None:
    rows = [
        "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match",
        f"1,100,1,100,{T0},True,True",
        f"2,100,1,100,{T0},perhaps,True",
        "3,100,1,100,",
        f"4,100,1,100,{T0},False,True",
        f"5,NaN,1,100,{T0},False,True",
    ]
    path = write(tmp_path / "BTCUSDT-trades-2025-01-01.csv", "\n".join(rows) + "\n")
    trades, rejects, _ = read_all(path)
    assert [t.trade_id for t in trades] == [1, 4]
    assert rejects.examples == {"bad_side": [3], "truncated": [4], "bad_price": [6]}
    agg = write(tmp_path / "BTCUSDT-aggTrades-2025-01-01.csv", f"1,100,1,9,8,{T0},true\n2,100,1,9,9,{T0},true\n")
    trades, rejects, _ = read_all(agg)
    assert [t.trade_id for t in trades] == [2] and rejects.examples == {"bad_count": [1]}


def test_bad_json_records_are_counted_by_record_number(tmp_path: Path) -> None:
    good = ["105000.1", "0.5", 1762795433.5, "b", "l", "", 1]
    doc = {
        "error": [],
        "result": {
            "XBTUSDT": [good, ["105000.1", "0.5"], ["x", "0.5", 1762795433.5, "s", "l", "", 3], [*good[:3], "?"]]
        },
    }
    path = write(tmp_path / "kraken.json", json.dumps(doc))
    trades, rejects, _ = read_all(path)
    assert len(trades) == 1 and trades[0].ts_ms == 1762795433500
    assert rejects.examples == {"truncated": [2], "not_numeric": [3], "bad_side": [4]}
    ccxt = [{"timestamp": T0, "price": 1.0, "amount": 1.0, "side": "buy", "symbol": "XRP/ETH", "id": "1"}, 7, {"x": 1}]
    trades, rejects, _ = read_all(write(tmp_path / "ccxt.json", json.dumps(ccxt)), "ccxt_json")
    assert len(trades) == 1 and rejects.examples == {"bad_record": [2], "missing_field": [3]}


def test_bad_ws_capture_lines(tmp_path: Path) -> None:
    event = {"e": "trade", "E": T0, "s": "BNBBTC", "t": 12345, "p": "0.001", "q": "100", "T": T0, "m": True}
    lines = [
        "wss://stream.binance.com:9443/ws/bnbbtc@trade <-> 1735689600.0",
        f"1735689600.25: {json.dumps(event)}",
        '1735689600.5: {"e": "trade", "s": "BNBBTC"',
        "garbage",
        f"1735689600.75: {json.dumps({**event, 'p': '0'})}",
        f"1735689601: {json.dumps({'e': 'aggTrade', 's': 'BNBBTC', 'p': '1', 'q': '1', 'T': T0, 'm': False})}",
        f"1735689602: {json.dumps({'stream': 'bnbbtc@trade', 'data': {**event, 't': 12346, 'm': False}})}",
    ]
    path = write(tmp_path / "capture.txt", "\n".join(lines) + "\n")
    assert detect_format(path) == "ws_capture"
    rejects = Rejects()
    timed = list(read_timed(path, rejects=rejects))
    trades = [t for b, _ in timed for t in b.to_trades()]
    assert trades == [
        Trade("BNBBTC", 0.001, 100.0, T0, 12345, "sell"),
        Trade("BNBBTC", 0.001, 100.0, T0, 12346, "buy"),
    ]
    assert timed[0][1].tolist() == [1735689600250, 1735689602000]
    assert rejects.examples == {"bad_json": [3], "bad_line": [4], "bad_price": [5], "missing_field": [6]}


def test_missing_file_and_unknown_format_fail_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        read_trades(tmp_path / "nope.csv", rejects=Rejects())
    with pytest.raises(FileNotFoundError):
        detect_format(tmp_path / "nope.csv")
    path = write(tmp_path / "x.csv", f"{T0},BTCUSDT,1,1\n")
    with pytest.raises(ValueError, match="unknown trade format 'parquet'"):
        read_trades(path, "parquet", rejects=Rejects())
    with pytest.raises(ValueError, match="cannot tell the format"):
        detect_format(write(tmp_path / "y.txt", "hello world\n"))
    with pytest.raises(ValueError, match="empty"):
        detect_format(write(tmp_path / "z.csv", ""))
    with pytest.raises(ValueError, match="not valid JSON"):
        list(read_trades(write(tmp_path / "t.json", '[{"a": '), "ccxt_json", rejects=Rejects()))
    for spec, fmt, exc in (
        ("exchange:binance", None, ValueError),
        ("replay:", None, ValueError),
        ("replay:" + str(tmp_path / "nope.csv"), None, FileNotFoundError),
        ("replay:" + str(path), "parquet", ValueError),
        ("replay:" + str(write(tmp_path / "dump.csv", f"1,1,1,1,{T0},True\n")), "binance_trades_csv", ValueError),
    ):
        with pytest.raises(exc) as info:
            open_source(spec, fmt=fmt)
        assert "\n" not in str(info.value)
    assert set(FORMATS) >= {"binance_trades_csv", "binance_aggtrades_csv", "plain_csv"}


def test_the_format_registry_feeds_the_help_and_the_readme() -> None:
    """Every registered format is in the --format help and has its row in the README's table."""
    readme = (ROOT / "README.md").read_text()
    help_lines = format_help().splitlines()
    assert [line.split(":", 1)[0] for line in help_lines] == list(FORMATS)
    for row in format_table().splitlines():
        assert row in readme


def test_the_source_registry_names_every_source() -> None:
    assert SPEC_HELP == "use 'simulator' or 'replay:PATH' or 'exchange:ID'"
    assert source_help() == "simulator | replay:PATH | exchange:ID"
    with pytest.raises(ValueError, match="unknown source 'simulator:x'"):
        open_source("simulator:x")
    with pytest.raises(ValueError, match="replay needs a file"):
        open_source("replay")
    with pytest.raises(ValueError, match=r"exchange needs a ccxt id, e\.g\. exchange:binance"):
        open_source("exchange")
    with pytest.raises(ValueError, match="exchange:binance needs symbols: --symbols BTCUSDT,ETHUSDT"):
        open_source("exchange:binance")
    with pytest.raises(ValueError, match="unknown exchange 'nope': `python -m backend feeds` lists them"):
        open_source("exchange:nope", symbols=["BTCUSDT"])


# ---------------------------------------------------------------- simulator

SIM_SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT", "NEWCOINUSDT"]


def test_simulator_is_deterministic_with_a_seed() -> None:
    a = Simulator(SIM_SYMBOLS, seed=42).generate(T0, 20_000)
    b = Simulator(SIM_SYMBOLS, seed=42).generate(T0, 20_000)
    c = Simulator(SIM_SYMBOLS, seed=43).generate(T0, 20_000)
    assert len(a) == 20_000
    for col in ("sym", "ts", "price", "qty", "trade_id", "taker_buy"):
        assert np.array_equal(getattr(a, col), getattr(b, col))
    assert not np.array_equal(a.price, c.price)
    sim = Simulator(SIM_SYMBOLS, seed=42)
    assert np.array_equal(sim.generate(T0, 1000).price, sim.generate(T0, 1000).price)  # generate is pure


def test_simulator_trades_are_plausible() -> None:
    batch = Simulator(SIM_SYMBOLS, seed=7).generate(T0, 200_000)
    assert len(batch.validated(now=T0).ts) == len(batch)
    assert (np.diff(batch.ts) >= 0).all() and batch.ts[0] >= T0
    starts = {"BTCUSDT": 97_000, "ETHUSDT": 3_600, "SOLUSDT": 240, "BNBUSDT": 650, "XRPUSDT": 1.4, "DOGEUSDT": 0.4}
    for code, symbol in enumerate(batch.symbols):
        mine = batch.sym == code
        price, ids = batch.price[mine], batch.trade_id[mine]
        assert mine.sum() > 1000
        assert (price > 0).all() and (batch.qty[mine] > 0).all()
        if symbol in starts:
            assert 0.8 < price.mean() / starts[symbol] < 1.2
        assert (np.diff(ids) == 1).all()  # increasing per symbol, no gaps
        assert 0.35 < batch.taker_buy[mine].mean() < 0.65
    btc = batch.price[batch.sym == 0]
    assert np.array_equal(np.round(btc, 2), btc)  # on the 0.01 tick
    returns = np.diff(np.log(btc))
    sq = returns**2 - (returns**2).mean()
    autocorr = [(sq[:-k] * sq[k:]).mean() / (sq * sq).mean() for k in (1, 10, 50)]
    assert min(autocorr) > 0.05  # volatility clusters
    moves = np.sign(np.diff(btc))
    assert batch.taker_buy[batch.sym == 0][1:][moves > 0].mean() > 0.6  # buyers lift the price


def test_simulator_duration_and_arrival_bursts() -> None:
    batch = Simulator(["BTCUSDT"], seed=3, rate=100).generate(T0, duration_ms=1_800_000)
    assert batch.ts.min() >= T0 and batch.ts.max() < T0 + 1_800_000
    per_second = np.bincount((batch.ts - T0) // 1000)
    assert 50 < per_second.mean() < 200
    assert per_second.var() > 5 * per_second.mean()  # over-dispersed: arrivals come in bursts


def test_simulator_generates_exactly_the_trades_asked_for_every_symbol() -> None:
    """What the benchmarks rely on (its speed is printed by benchmarks/aggregate.py, not asserted here)."""
    symbols = [f"S{i}USDT" for i in range(20)]
    batch = Simulator(symbols, seed=1).generate(T0, 100_000)
    assert len(batch) == 100_000 and sorted(batch.symbols) == sorted(symbols)
    assert sorted(set(batch.sym.tolist())) == list(range(20))
    assert batch.ts.min() >= T0 and bool(np.all(np.diff(batch.ts) >= 0))


def test_simulator_live_batches_follow_the_wall_clock() -> None:
    sim = open_source("simulator", symbols=["BTCUSDT", "ETHUSDT"], seed=1)
    assert isinstance(sim, Simulator) and sim.live
    sim.rate = 2000
    stop = threading.Event()
    got: list[TradeBatch] = []
    gaps: list[float] = []
    started = last = time.monotonic()
    for batch in sim.batches(stop):
        now = time.monotonic()
        gaps.append(now - last)
        last = now
        got.append(batch)
        if now - started > 0.4:
            stop.set()
    trades = sum(len(b) for b in got)
    assert 100 < trades < 5000
    assert max(gaps) < 0.5  # a batch every tick (~25 ms), even when empty
    ts = np.concatenate([b.ts for b in got])
    assert (np.diff(ts) >= 0).all() and abs(int(ts[-1]) - now_ms()) < 1000


def test_simulator_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Simulator(["BTC$"])
    with pytest.raises(ValueError):
        Simulator(["BTCUSDT"], rate=-1)
    with pytest.raises(ValueError):
        Simulator(["BTCUSDT"]).generate(T0)


# ---------------------------------------------------------------- replay


def test_replay_at_speed_zero_plays_everything_at_once() -> None:
    source = open_source("replay:" + str(KRAKEN), speed=0)
    assert isinstance(source, ReplaySource) and not source.live
    started = time.monotonic()
    batches = list(source.batches(threading.Event()))
    assert time.monotonic() - started < 2
    assert sum(len(b) for b in batches) == 1000 and source.rejects.total == 0


def test_timed_replay_follows_the_receive_times() -> None:
    """A 30 s capture at speed 100 takes about 0.3 s, with idle batches while it waits."""
    source = ReplaySource(WS / "BINANCE_FUTURES.ws.1.0", speed=100)
    started = time.monotonic()
    batches = list(source.batches(threading.Event()))
    elapsed = time.monotonic() - started
    assert sum(len(b) for b in batches) == 91
    assert 0.2 < elapsed < 3
    assert source.skipped.counts["depthUpdate"] == 764


def test_replay_yields_idle_batches_while_waiting(tmp_path: Path) -> None:
    path = write(tmp_path / "two.csv", f"{T0},BTCUSDT,1,1\n{T0 + 1000},BTCUSDT,2,1\n")
    started = time.monotonic()
    batches = list(ReplaySource(path, speed=4).batches(threading.Event()))
    assert 0.2 < time.monotonic() - started < 1.5
    assert [len(b) for b in batches if len(b)] == [1, 1]
    assert sum(len(b) == 0 for b in batches) >= 2  # about every 50 ms while it waits 250 ms


def test_replay_stops_when_asked_and_filters_symbols() -> None:
    source = ReplaySource(WS / "BINANCE_FUTURES.ws.1.0", speed=1, symbols=["ctk/usdt"])
    stop = threading.Event()
    started = time.monotonic()
    seen: set[str] = set()
    for batch in source.batches(stop):
        seen |= {batch.symbols[i] for i in np.unique(batch.sym)}
        if time.monotonic() - started > 0.3:
            stop.set()
    assert time.monotonic() - started < 1.5
    assert seen <= {"CTKUSDT"}
    with pytest.raises(ValueError, match="speed"):
        ReplaySource(KRAKEN, speed=-1)
