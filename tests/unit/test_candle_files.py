"""The offline command's output: the vectorised writer byte for byte as the csv-module writer it replaced,
streams spilled and put back in (symbol, interval, open_time) order, no pandas imported, the progress bar."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.candle_files import OUTPUT_FIELDS, CandleFile, csv_rows, jsonl_rows
from backend.models import Candle
from backend.offline import aggregate_file, write_candles
from backend.progress import estimated_rows, row_progress
from tests.conftest import SAMPLES

REAL_FILES = [
    (SAMPLES / "binance_xrpeth_2019" / "XRP_ETH-aggtrades.json.gz", ("1s", "1m", "5m", "1h")),
    (SAMPLES / "kraken_xbtusdt_2025" / "http_trades.json", ("1s", "1m", "15m")),
    (SAMPLES / "ws_recordings" / "BINANCE_FUTURES.ws.1.0", ("1s", "1m")),
    (SAMPLES / "ws_recordings" / "COINBASE.ws.28.0", ("1s", "5m")),
]


def csv_module_writer(candles: list[Candle], out: Path) -> None:
    """The writer as it was before (csv.writer, ``repr`` per float cell): the reference."""

    def cell(v: object) -> object:
        if isinstance(v, bool):
            return "true" if v else "false"
        return repr(v) if isinstance(v, float) else v

    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(OUTPUT_FIELDS)
        for c in candles:
            w.writerow(["candle", *(cell(getattr(c, name)) for name in OUTPUT_FIELDS[1:])])


def candle(symbol: str, interval: str, open_time: int, **fields: object) -> Candle:
    base = dict(open=1.0, high=1.0, low=1.0, close=1.0, volume=0.0, quote_volume=0.0, trades=0,
                taker_buy_volume=0.0, taker_buy_quote_volume=0.0, closed=True, seq=1, event_time=open_time)  # fmt: skip
    base.update(fields)
    ms = {"1s": 1000, "1m": 60_000}[interval]
    return Candle(symbol=symbol, interval=interval, open_time=open_time, close_time=open_time + ms - 1, **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("path", "intervals"), REAL_FILES, ids=lambda p: getattr(p, "name", ""))
def test_writer_is_byte_for_byte_the_csv_module_writer_on_real_data(tmp_path, path, intervals):
    candles, _, _ = aggregate_file(path, intervals)
    write_candles(candles, tmp_path / "new.csv")
    csv_module_writer(candles, tmp_path / "old.csv")
    new, old = (tmp_path / "new.csv").read_bytes(), (tmp_path / "old.csv").read_bytes()
    assert new == old
    assert new.count(b"\r\n") == len(candles) + 1


def test_real_data_covers_exponents_flat_candles_and_open_candles():
    """The files above hold what a formatter gets wrong: exponent floats, flat candles, ``closed`` false."""
    candles, _, _ = aggregate_file(*REAL_FILES[1])  # Kraken XBT/USDT: prices near 100,000, volumes down to 1e-06
    text = csv_rows(candles)
    assert "e-05," in text and "e-06," in text
    assert max(c.high for c in candles) > 90_000
    assert sum(c.trades == 0 and c.volume == 0.0 for c in candles) > 1000  # flat candles
    assert ",false," in text and ",true," in text


def test_rows_of_tiny_huge_and_flat_candles_are_exact():
    rows = csv_rows(
        [
            candle(
                "BTCUSDT",
                "1m",
                1_700_000_000_000,
                open=97000.12,
                high=1e16,
                low=1e-05,
                close=123456.789,
                volume=0.1 + 0.2,
                quote_volume=2.5e-07,
                trades=3,
                taker_buy_volume=100.0,
                closed=False,
                seq=7,
                event_time=1_700_000_000_123,
            ),
            candle("XRPETH", "1s", 1_546_300_800_000, open=0.00123, high=0.00123, low=0.00123, close=0.00123),
        ]
    )
    assert rows == (
        "candle,BTCUSDT,1m,1700000000000,1700000059999,97000.12,1e+16,1e-05,123456.789,0.30000000000000004,"
        "2.5e-07,3,100.0,0.0,false,7,1700000000123\r\n"
        "candle,XRPETH,1s,1546300800000,1546300800999,0.00123,0.00123,0.00123,0.00123,0.0,0.0,0,0.0,0.0,true,1,"
        "1546300800000\r\n"
    )


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_spilled_streams_come_back_in_symbol_interval_time_order(tmp_path, suffix):
    """Event order in, (symbol, interval duration, open_time) out, the same whether or not streams were spilled."""
    t = 1_700_000_040_000
    batches = [
        [candle("ETHUSDT", "1s", t), candle("BTCUSDT", "1m", t - 60_000), candle("BTCUSDT", "1s", t)],
        [candle("BTCUSDT", "1s", t + 1000, seq=2), candle("ETHUSDT", "1s", t + 1000, seq=2)],
        [candle("BTCUSDT", "1m", t, closed=False, seq=2), candle("BTCUSDT", "1s", t + 2000, closed=False, seq=3)],
    ]
    spilled = CandleFile(tmp_path / f"spilled{suffix}", spill_bytes=1)
    kept = CandleFile(tmp_path / f"kept{suffix}")
    for part in batches:
        spilled.add(part)
        kept.add(part)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".candles-")]  # the spill files exist
    spilled.finish()
    kept.finish()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".candles-")]  # and are gone
    order = [
        ("BTCUSDT", "1s", t),
        ("BTCUSDT", "1s", t + 1000),
        ("BTCUSDT", "1s", t + 2000),
        ("BTCUSDT", "1m", t - 60_000),
        ("BTCUSDT", "1m", t),
        ("ETHUSDT", "1s", t),
        ("ETHUSDT", "1s", t + 1000),
    ]
    flat = [c for part in batches for c in part]
    expected = [next(c for c in flat if (c.symbol, c.interval, c.open_time) == key) for key in order]
    text = (tmp_path / f"spilled{suffix}").read_text()
    assert text == (tmp_path / f"kept{suffix}").read_text()
    if suffix == ".csv":
        header, *rows = text.splitlines()
        assert header == (
            "type,symbol,interval,open_time,close_time,open,high,low,close,volume,quote_volume,trades,"
            "taker_buy_volume,taker_buy_quote_volume,closed,seq,event_time"
        )
        assert rows == csv_rows(expected).splitlines()
    else:
        assert text == jsonl_rows(expected)
    assert spilled.written == 7


def test_progress_bar_only_on_a_terminal(tmp_path):
    path = tmp_path / "trades.csv"
    path.write_bytes(b"1700000000000,BTCUSDT,1.5,2.0\n" * 100)  # 30 bytes a line
    assert estimated_rows(path) == 100
    with row_progress(path, io.StringIO()) as progress:
        assert progress is None

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    with row_progress(path, screen) as progress:
        assert progress is not None
        progress(40)
        progress(60)
    assert "trades.csv" in screen.getvalue()


def reference_rows(candles: list[Candle]) -> str:
    """Each cell as the csv-module writer wrote it (``repr`` of a float), row by row: the reference."""
    buffer = io.StringIO()
    w = csv.writer(buffer)
    for c in candles:
        w.writerow(["candle", *(_cell(getattr(c, name)) for name in OUTPUT_FIELDS[1:])])
    return buffer.getvalue()


def _cell(v: object) -> object:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else v


# every layout repr has: exponents both ways and of 1 to 3 digits, the edges of positional, signs, subnormals
EDGES = [
    *(1e-05, 9.999999999999999e-05, 0.0001, 1e16, 9999999999999998.0, 1e-07, 1e100, 1e-300, 5e-324, -0.0, 0.0),
    *(-1e-05, -2.5e-08, 10.00001, 100.000012, 1.00001e-07, 0.1 + 0.2, 123456789012345.6, 1.2345678901234568e17),
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(EDGES), min_size=8, max_size=80))
def test_the_rows_equal_repr_cell_by_cell_for_any_finite_floats(values):
    fields = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")
    cells = [dict(zip(fields, values[i : i + 8], strict=True)) for i in range(len(values) - 7)]
    symbols = ["BTCUSDT" if i % 16 < 8 else "ETHBTC" for i in range(len(cells))]  # runs of two streams
    candles = [
        candle(s, "1m", 1_700_000_000_000 + i * 60_000, closed=i % 3 > 0, seq=i, **c)
        for i, (s, c) in enumerate(zip(symbols, cells, strict=True))
    ]
    assert csv_rows(candles) == reference_rows(candles)


def test_a_sum_that_overflowed_to_infinity_is_written_as_repr_does():
    candles = [candle("BTCUSDT", "1m", 1_700_000_000_000, volume=float("inf"), quote_volume=1e-05)]
    assert csv_rows(candles) == reference_rows(candles)
    assert ",inf,1e-05," in csv_rows(candles)
