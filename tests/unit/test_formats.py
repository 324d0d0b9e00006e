"""The file readers' edge cases, each pinned with literal values: block boundaries, BOMs, streamed reads, errors.

The CSV block size is patched small so that a few bytes cross every boundary a
4 MB block meets in a real dump.
"""

from __future__ import annotations

import gzip
import io
import json
import mmap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pytest

from backend.models import Rejects, Trade
from backend.sources import formats
from backend.sources.formats import (
    ReadLimits,
    TradeFileError,
    csv_blocks,
    csv_columns,
    detect_format,
    format_help,
    plain_csv,
    read_timed,
    read_trades,
)
from backend.sources.formats.csv_reader import CsvLayout, CsvReader, csv_format
from backend.sources.formats.emitter import Emitter
from backend.sources.formats.files import describe_read_error
from backend.sources.formats.spec import Sniff
from tests.unit.test_sources import T0, read_all, write

BOM = b"\xef\xbb\xbf"
# a BOM, two short lines, a line longer than a block, a line, a last line without newline
CONTENT = BOM + b"a,1\nbb,22\n" + b"x" * 20 + b"\nc,3\nd,4"


def _blocks(stream: io.IOBase) -> list[bytes]:
    return [bytes(b) for b in csv_blocks.blocks(stream)]  # type: ignore[arg-type]


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_blocks, "BLOCK_BYTES", 8)


def test_a_mapped_file_is_cut_at_line_ends(tmp_path: Path, small_blocks: None) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(CONTENT)
    with path.open("rb") as f:
        assert _blocks(f) == [b"a,1\n", b"bb,22\n", b"x" * 20 + b"\n", b"c,3\nd,4"]
    path.write_bytes(b"a,1\n" + b"y" * 20)  # the long line is the last, without newline
    with path.open("rb") as f:
        assert _blocks(f) == [b"a,1\n", b"y" * 20]
    path.write_bytes(b"\n" + b"y" * 20 + b"\na,1\n")  # a line end at the very first byte
    with path.open("rb") as f:
        assert _blocks(f) == [b"\n", b"y" * 20 + b"\n", b"a,1\n"]
    path.write_bytes(b"a,1234\n")  # one line, exactly a block long minus one
    with path.open("rb") as f:
        assert _blocks(f) == [b"a,1234\n"]


def test_a_mapped_block_is_a_view_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(BOM + b"a,1\n")
    with path.open("rb") as f:
        (block,) = csv_blocks.blocks(f)
        assert isinstance(block, memoryview) and bytes(block) == b"a,1\n"
        block.release()


def test_a_stream_is_cut_at_line_ends(tmp_path: Path, small_blocks: None) -> None:
    """A compressed file is read as a stream (8 bytes at a time here): partial lines wait for their end."""
    assert _blocks(io.BytesIO(CONTENT)) == [b"a,1\n", b"bb,22\n", b"x" * 20 + b"\nc,3\n", b"d,4"]
    assert _blocks(io.BytesIO(b"a,1\n" + b"y" * 20)) == [b"a,1\n", b"y" * 20]
    assert _blocks(io.BytesIO(BOM + b"1234567\n")) == [b"1234567\n"]
    assert _blocks(io.BytesIO(BOM + b"1,2")) == [b"1,2"]  # one line, no newline: the rest at the end
    assert _blocks(io.BytesIO(b"")) == []


class _NoFile(io.RawIOBase):
    """A buffered stream with no file behind it (no descriptor to map)."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self.data.readinto(buffer)

    def fileno(self) -> int:
        raise OSError("no descriptor")


def test_a_buffered_stream_that_cannot_be_mapped_is_streamed(small_blocks: None) -> None:
    assert _blocks(io.BufferedReader(_NoFile(CONTENT))) == [b"a,1\n", b"bb,22\n", b"x" * 20 + b"\nc,3\n", b"d,4"]


def test_empty_files_have_no_blocks(tmp_path: Path) -> None:
    empty, bom = tmp_path / "empty.csv", tmp_path / "bom.csv"
    empty.write_bytes(b"")  # cannot be mapped: read as a stream
    bom.write_bytes(BOM)
    for path in (empty, bom):
        with path.open("rb") as f:
            assert _blocks(f) == []


class _Spy(mmap.mmap):
    """A real mapping that records which pages the reader lets go."""

    released: ClassVar[list[tuple[int, int]]] = []

    def madvise(self, option: int, start: int = 0, length: int = 0) -> None:  # type: ignore[override]
        assert option == mmap.MADV_DONTNEED
        _Spy.released.append((start, length))
        super().madvise(option, start, length)


def test_pages_behind_the_kept_blocks_are_released(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = mmap.PAGESIZE
    monkeypatch.setattr(csv_blocks, "BLOCK_BYTES", page)
    monkeypatch.setattr(csv_blocks, "_KEEP_BLOCKS", 2)
    monkeypatch.setattr(mmap, "mmap", _Spy)
    monkeypatch.setattr(_Spy, "released", [])
    path = tmp_path / "t.csv"
    path.write_bytes(b"".join(b"%063d\n" % i for i in range(6 * page // 64)))  # six pages of whole lines: a block each
    with path.open("rb") as f:
        assert [len(b) for b in csv_blocks.blocks(f)] == [page] * 6
    assert _Spy.released == [(0, page), (page, page), (2 * page, page)]


def test_release_ends_on_a_page_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = mmap.PAGESIZE
    monkeypatch.setattr(_Spy, "released", [])
    path = tmp_path / "t.csv"
    path.write_bytes(b"0" * (4 * page))
    with path.open("rb") as f:
        mapped = _Spy(f.fileno(), 0, access=mmap.ACCESS_READ)
    assert csv_blocks._release(mapped, 0, 2 * page + 10) == 2 * page
    assert csv_blocks._release(mapped, 2 * page, 3 * page - 1) == 2 * page  # not a whole page further
    assert csv_blocks._release(mapped, 2 * page, 3 * page) == 3 * page
    assert _Spy.released == [(0, 2 * page), (2 * page, page)]
    mapped.close()


def test_ordered_map_keeps_order_a_few_items_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_blocks, "_PARSE_THREADS", 3)
    pulled: list[int] = []
    threads: set[str] = set()

    def items() -> Iterator[int]:
        for i in range(10):
            pulled.append(i)
            yield i

    def square(x: int) -> int:
        threads.add(threading.current_thread().name)
        return x * x

    results = csv_blocks.ordered_map(square, items())
    assert next(results) == 0
    assert pulled == [0, 1, 2, 3]  # three threads' worth in work, one more queued
    assert list(results) == [1, 4, 9, 16, 25, 36, 49, 64, 81]
    assert threads and all(name.startswith("trade-file_") for name in threads)
    assert len(threads) <= 3


def test_ordered_map_raises_what_the_function_raised() -> None:
    def fail(x: int) -> int:
        raise ValueError(f"bad {x}")

    with pytest.raises(ValueError, match="bad 0"):
        list(csv_blocks.ordered_map(fail, iter([0, 1])))


def test_line_helpers() -> None:
    assert csv_blocks.first_line(b"a,b\nc,d\n") == b"a,b"
    assert csv_blocks.first_line(memoryview(b"a,b")) == b"a,b"
    assert csv_blocks.first_line(b"\na,b") == b""
    assert csv_blocks.first_line(b"x" * 70_000) == b"x" * 65_536  # a first line is looked for in 64 KB
    assert csv_blocks.split('1,"a,b",2') == ["1", "a,b", "2"]
    assert csv_blocks.split("1,a,2") == ["1", "a", "2"]
    assert csv_blocks.is_number(' "1.5" ') and csv_blocks.is_number("-2")
    assert not csv_blocks.is_number("ts") and not csv_blocks.is_number("") and not csv_blocks.is_number("X1")
    assert csv_blocks.lines_in(b"a\nb\n") == 2 and csv_blocks.lines_in(b"a\nb") == 2 and csv_blocks.lines_in(b"") == 1
    assert [(r, t) for r, t in csv_blocks.lines_at(b"a,1\nbb\nc\xff\nd", np.array([0, 2, 3]))] == [
        (0, "a,1"),
        (2, "c\ufffd"),
        (3, "d"),
    ]


def test_parts_are_whole_lines() -> None:
    block = b"1\n22\n333\n4444\n55555\n"  # 20 bytes: cuts at the first line end from byte 5, 10, 15
    assert csv_blocks.parts(block, 4) == [b"1\n22\n333\n", b"4444\n", b"55555\n"]
    assert csv_blocks.parts(block, 2) == [b"1\n22\n333\n4444\n", b"55555\n"]
    assert csv_blocks.parts(b"1\n" + b"2" * 30, 4) == [b"1\n" + b"2" * 30]  # no line end past a quarter: one piece
    assert csv_blocks.parts(b"123456\n", 4) == [b"123456\n"]


# ---------------------------------------------------------------- the CSV reader: fast path, line parser, line numbers

PLAIN = "ts_ms,symbol,price,qty,side,trade_id"


@pytest.fixture
def parsed_lines(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The line numbers that reach the line parser (the slow path), in order."""
    seen: list[int] = []
    parse = CsvReader.parse_line

    def spy(self: CsvReader, text: str, line: int) -> object:
        seen.append(line)
        return parse(self, text, line)

    monkeypatch.setattr(CsvReader, "parse_line", spy)
    return seen


@pytest.fixture(params=["arrow", "pandas"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both strict parsers: pyarrow, and pandas' C parser where pyarrow is missing."""
    monkeypatch.setattr(csv_columns, "columns", getattr(csv_columns, f"columns_{request.param}"))
    return request.param


@pytest.mark.parametrize(
    ("name", "rows", "first"),
    [
        (
            "p.csv",
            [f"{T0 + i},BTCUSDT,{100 + i}.5,0.25" for i in range(3)],
            Trade("BTCUSDT", 100.5, 0.25, T0, 1, "sell"),
        ),
        (
            "p.csv",
            [PLAIN, *(f"{T0 + i},ETHUSDT,{100 + i}.5,0.25,buy,{7 + i}" for i in range(3))],
            Trade("ETHUSDT", 100.5, 0.25, T0, 7, "buy"),
        ),
        (
            "BTCUSDT-trades-2025-01-01.csv",
            [f"{5 + i},96998.91,0.5,48499.45,{T0 + i},true" for i in range(3)],
            Trade("BTCUSDT", 96998.91, 0.5, T0, 5, "sell"),
        ),
        (
            "BTCUSDT-trades-2025-01-01.csv",
            [f"{5 + i},96998.91,0.5,48499.45,{T0 + i},False,True" for i in range(3)],
            Trade("BTCUSDT", 96998.91, 0.5, T0, 5, "buy"),
        ),
        (
            "BTCUSDT-aggTrades-2025-01-01.csv",
            [f"{5 + i},2.5,4,10,12,{T0 + i},true" for i in range(3)],
            Trade("BTCUSDT", 2.5, 4.0, T0, 5, "sell", 3),
        ),
        (
            "BTCUSDT-aggTrades-2025-01-01.csv",
            [f"{5 + i},2.5,4,10,10,{T0 + i},false,true" for i in range(3)],
            Trade("BTCUSDT", 2.5, 4.0, T0, 5, "buy", 1),
        ),
    ],
)
def test_a_clean_file_never_reaches_the_line_parser(
    tmp_path: Path, parsed_lines: list[int], engine: str, name: str, rows: list[str], first: Trade
) -> None:
    """A good block costs one strict parse, with the fewest and the most fields each format allows."""
    trades, rejects, _ = read_all(write(tmp_path / name, "\n".join(rows) + "\n"))
    assert (len(trades), trades[0], rejects.counts, parsed_lines) == (3, first, {}, [])


def test_only_unusable_rows_reach_the_line_parser(tmp_path: Path, parsed_lines: list[int], engine: str) -> None:
    rows = [
        PLAIN,
        f"{T0},BTCUSDT,100,1,buy,2",
        f"{T0},BTCUSDT,0,1,buy,3",
        f"{T0},BTCUSDT,100,1,maybe,4",
        f"{T0},BTC$USDT,100,1,buy,5",
        f"{T0},ETHUSDT,100,1,SELL,6",
        "1000,BTCUSDT,100,1,buy,7",
        f"{T0},BTCUSDT,100,1,b,8",
    ]
    trades, rejects, _ = read_all(write(tmp_path / "p.csv", "\n".join(rows)))
    assert parsed_lines == [3, 4, 5, 7]
    assert rejects.examples == {"bad_price": [3], "bad_side": [4], "bad_symbol": [5], "ts_too_old": [7]}
    assert trades == [
        Trade("BTCUSDT", 100.0, 1.0, T0, 2, "buy"),
        Trade("ETHUSDT", 100.0, 1.0, T0, 6, "sell"),
        Trade("BTCUSDT", 100.0, 1.0, T0, 8, "buy"),
    ]


def test_a_failing_block_of_up_to_slow_bytes_is_read_line_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parsed_lines: list[int]
) -> None:
    rows = [f"{T0 + i},BTCUSDT,{100 + i}.5,0.25" for i in range(8)]
    rows[2] = f"{T0},BTCUSDT,abc,0.25"
    text = "\n".join(rows) + "\n"
    monkeypatch.setattr(csv_blocks, "SLOW_BYTES", len(text))
    trades, rejects, _ = read_all(write(tmp_path / "p.csv", text))
    assert parsed_lines == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [t.trade_id for t in trades] == [1, 2, 4, 5, 6, 7, 8] and rejects.examples == {"not_numeric": [3]}
    parsed_lines.clear()
    monkeypatch.setattr(csv_blocks, "SLOW_BYTES", len(text) - 1)  # cut in four: the good quarters parse fast
    assert [t.trade_id for t in read_all(write(tmp_path / "p.csv", text))[0]] == [1, 2, 4, 5, 6, 7, 8]
    assert parsed_lines == [3, 4, 5]  # the failing quarter: lines 3 to 5 (bytes 66 to 162 of 262)


def test_line_numbers_across_small_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str) -> None:
    """The header alone in the first block, then one row per block; a bad first field opening a later block."""
    monkeypatch.setattr(csv_blocks, "BLOCK_BYTES", 40)
    rows = [
        "ts_ms,symbol,price,qty",  # 22 bytes: with the next row 55, past a block
        f"{T0},BTCUSDT,100.5,0.25",
        f"{T0},BTCUSDT,101.5,0.25",
        "abc,BTCUSDT,102.5,0.25",
        f"{T0},BTCUSDT,0,0.25",
        f"{T0},BTCUSDT,104.5,0.25",
    ]
    trades, rejects, _ = read_all(write(tmp_path / "p.csv", "\n".join(rows) + "\n"))
    assert [t.trade_id for t in trades] == [2, 3, 6]  # no trade ids: the line numbers
    assert rejects.examples == {"not_numeric": [4], "bad_price": [5]}
    monkeypatch.setattr(csv_blocks, "BLOCK_BYTES", 24)  # the header fills the first block whole
    trades, rejects, _ = read_all(write(tmp_path / "p.csv", "\n".join(rows) + "\n"))
    assert [t.trade_id for t in trades] == [2, 3, 6]
    assert rejects.examples == {"not_numeric": [4], "bad_price": [5]}


def test_the_line_parser_reads_optional_and_odd_fields(tmp_path: Path) -> None:
    """Blank lines, empty optional fields, too few and too many fields, bytes that are not UTF-8."""
    rows = [
        f"{T0},BTCUSDT,100.5,0.25",  # no side, no trade id: a sell, the line number
        f"{T0},BTCUSDT,100.5,0.25,buy,",  # an empty trade id: the line number
        "",
        f"{T0},BTCUSDT,100.5,0.25,,7",  # an empty side: a sell
        "garbage",
        f"{T0},BTC\udcffUSDT,100.5,0.25",
        f"{T0},BTCUSDT,100.5,0.25,buy,8,extra",
        f'{T0},"ETHUSDT",1.5,2,buy,9',
    ]
    path = tmp_path / "p.csv"
    path.write_bytes("\n".join(rows).encode("utf-8", "surrogateescape"))
    trades, rejects, _ = read_all(path, "plain_csv")
    assert trades == [
        Trade("BTCUSDT", 100.5, 0.25, T0, 1, "sell"),
        Trade("BTCUSDT", 100.5, 0.25, T0, 2, "buy"),
        Trade("BTCUSDT", 100.5, 0.25, T0, 7, "sell"),
        Trade("ETHUSDT", 1.5, 2.0, T0, 9, "buy"),
    ]
    assert rejects.examples == {"truncated": [5], "bad_symbol": [6], "too_many_fields": [7]}


def test_a_header_that_is_not_utf8_is_still_a_header(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b"ts\xff,symbol,price,qty\n" + f"{T0},BTCUSDT,100.5,0.25\n".encode())
    assert read_all(path, "plain_csv")[0] == [Trade("BTCUSDT", 100.5, 0.25, T0, 2, "sell")]


def test_rows_with_more_fields_than_the_format_are_rejected_whole(tmp_path: Path, engine: str) -> None:
    rows = [f"{T0},BTCUSDT,100.5,0.25,buy,{i},x" for i in range(3)]
    trades, rejects, _ = read_all(write(tmp_path / "p.csv", "\n".join(rows) + "\n"), "plain_csv")
    assert trades == [] and rejects.examples == {"too_many_fields": [1, 2, 3]}
    rows = [f"{T0},BTCUSDT,100.5" for i in range(3)]
    trades, rejects, _ = read_all(write(tmp_path / "p.csv", "\n".join(rows) + "\n"), "plain_csv")
    assert trades == [] and rejects.examples == {"truncated": [1, 2, 3]}


def test_a_read_is_judged_against_the_time_it_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ "In the future" means past the clock read when the file was opened, on every path."""
    monkeypatch.setattr(formats, "now_ms", lambda: T0)
    later = T0 + 2 * 86_400_000  # in the future then, long past now
    plain = write(tmp_path / "p.csv", f"{T0},BTCUSDT,1,1\n{later},BTCUSDT,1,1\n")
    ccxt = write(
        tmp_path / "c.json",
        f'[{{"timestamp": {T0}, "price": 1, "amount": 1}}, {{"timestamp": {later}, "price": 1, "amount": 1}}]',
    )
    for path, fmt in ((plain, "plain_csv"), (ccxt, "ccxt_json")):
        trades, rejects, _ = read_all(path, fmt, symbol="BTCUSDT")
        assert [t.ts_ms for t in trades] == [T0] and rejects.examples == {"ts_in_future": [2]}


# ---------------------------------------------------------------- a CSV format and its strict parsers


def test_csv_format_builds_a_detected_reader() -> None:
    layout = CsvLayout(4, 4, ts=1, price=2, qty=3)
    fmt = csv_format("dump_csv", "a dump", layout, header=frozenset({"when"}), data_row=plain_csv._data_row)
    assert (fmt.name, fmt.description, fmt.header, fmt.needs_symbol) == ("dump_csv", "a dump", {"when"}, False)
    known = frozenset({"when", "agg_trade_id"})

    def detect(head: bytes) -> bool:
        return fmt.detect(Sniff(Path("x.csv"), head, known))

    assert detect(b"id,when,price,qty\n1,2,3,4\n")  # its header
    assert not detect(b"agg_trade_id,when2\n1,x\n")  # another format's header decides
    assert detect(b"123,BTCUSDT,3,4\n")  # no header: its data row
    assert not detect(b"123,456,3,4\n")
    assert detect(b"a,b\n1,BTC\n")  # a header no format knows: the data row
    assert not detect(b"a,agg_trade_id\n1,BTC\n")
    em = Emitter(10, Rejects(), Rejects(), T0 + 1)
    batches = [b for b, _ in fmt.read(io.BytesIO(f"7,{T0},2.5,3\n".encode()), em, "ETHUSDT")]
    assert [t for b in batches for t in b.to_trades()] == [Trade("ETHUSDT", 2.5, 3.0, T0, 1, "sell")]
    needy = csv_format("d", "", layout, header=frozenset(), data_row=plain_csv._data_row, needs_symbol=True)
    assert needy.needs_symbol and needy.header == frozenset()


KINDS = {0: "int", 1: "str", 2: "float", 3: "bool"}


@pytest.mark.parametrize("parse", [csv_columns.columns_arrow, csv_columns.columns_pandas])
def test_the_strict_parsers_read_typed_columns(parse) -> None:
    cols = parse(b"1,BTC,1.5,true\n2,NA,2.5,false\n3,BTC,3.5,true", 4, KINDS)
    assert cols is not None and set(cols) == {0, 1, 2, 3}
    assert cols[0].dtype == np.int64 and cols[0].tolist() == [1, 2, 3]
    assert cols[2].dtype == np.float64 and cols[2].tolist() == [1.5, 2.5, 3.5]
    assert cols[3].dtype == np.bool_ and cols[3].tolist() == [True, False, True]
    codes, distinct = cols[1]
    assert list(codes) == [0, 1, 0] and distinct == ["BTC", "NA"]  # "NA" is a name, not a missing value
    assert parse(b"1,,1.5,true\n", 4, KINDS)[1][1] == [""]  # type: ignore[index]
    only = parse(b"9,x,0.5,false,7", 5, {0: "int", 4: "int"})  # one line, no newline, columns left out
    assert only is not None and sorted(only) == [0, 4] and only[4].tolist() == [7]


@pytest.mark.parametrize("parse", [csv_columns.columns_arrow, csv_columns.columns_pandas])
@pytest.mark.parametrize(
    "block",
    [
        b"1,BTC,x,true\n",  # not a number
        b"1,BTC,1.5\n",  # too few fields
        b"1,BTC,1.5,true,9\n",  # too many fields
        b"1,BTC,1.5,true\n\n2,BTC,1.5,true\n",  # a blank line: a row of no fields
        b"1.5,BTC,1.5,true\n",  # not an integer
        b",BTC,1.5,true\n",  # an empty number
        b"99999999999999999999,BTC,1.5,true\n",  # past int64
    ],
)
def test_the_strict_parsers_refuse_a_block_with_a_bad_line(parse, block: bytes) -> None:
    assert parse(block, 4, KINDS) is None


def test_arrow_columns_are_read_from_their_offset() -> None:
    assert csv_columns._numpy(pa.array([1, 2, 3, 4, 5], pa.int64())[1:4]).tolist() == [2, 3, 4]
    assert csv_columns._numpy(pa.array([True, False, True, True, False])[1:3]).tolist() == [False, True]
    assert csv_columns._numpy(pa.array([0.5, 1.5])).tolist() == [0.5, 1.5]


# ---------------------------------------------------------------- JSON documents and captures


def test_kraken_records_old_and_odd(tmp_path: Path) -> None:
    """Times kept exact past a float's digits; six fields (no trade id): the record number; the "last" id skipped."""
    path = write(
        tmp_path / "k.json",
        '{"error": [], "result": {"XBTUSDT": ['
        '["105000.1", "0.5", 1762795433.9999999999, "b", "l", "", 7], '
        '["105000.1", "0.5", 1762795433.5, "s", "l", ""], '
        '{"price": "1"}], "XETHZUSD": 3, "last": "1762820035982277754"}}',  # a member that is not a list: skipped
    )
    trades, rejects, _ = read_all(path)
    assert trades == [
        Trade("XBTUSDT", 105000.1, 0.5, 1762795433999, 7, "buy"),
        Trade("XBTUSDT", 105000.1, 0.5, 1762795433500, 2, "sell"),
    ]
    assert rejects.examples == {"bad_record": [3]}


KRAKEN_SHAPE = 'Kraken trades JSON must be {"error": [...], "result": {PAIR: [...], "last": ...}}'


@pytest.mark.parametrize(
    ("fmt", "doc", "message"),
    [
        ("kraken_json", "[1]", KRAKEN_SHAPE),
        ("kraken_json", '{"result": []}', KRAKEN_SHAPE),
        (
            "kraken_json",
            '{"error": ["EQuery:Unknown asset pair"], "result": {}}',
            "Kraken answered with an error: ['EQuery:Unknown asset pair']",
        ),
        ("ccxt_json", '{"x": 1}', "ccxt trade JSON must be an array of trades"),
    ],
)
def test_json_that_is_not_trades_is_one_line(tmp_path: Path, fmt: str, doc: str, message: str) -> None:
    path = write(tmp_path / "t.json", doc)
    with pytest.raises(TradeFileError) as err:
        read_all(path, fmt)
    assert str(err.value) == f"{path}: {message} (near byte {len(doc)})"


def test_ccxt_records_without_symbol_side_or_first_id(tmp_path: Path) -> None:
    records = [
        {"timestamp": T0, "price": 1.5, "amount": 2},  # no symbol: the file's; no side: a sell
        {"info": {"a": 9, "p": "2.5", "q": "3", "T": T0, "m": False}},  # no f/l: one raw trade
        {"info": {"a": 10, "p": "2.5", "q": "3", "f": 4, "l": 6, "T": T0, "m": True}, "symbol": "ETH/BTC"},
    ]
    path = write(tmp_path / "c.json", json.dumps(records))
    trades, rejects, _ = read_all(path, "ccxt_json", symbol="XRPETH")
    assert trades == [
        Trade("XRPETH", 1.5, 2.0, T0, 1, "sell"),
        Trade("XRPETH", 2.5, 3.0, T0, 9, "buy", 1),
        Trade("ETHBTC", 2.5, 3.0, T0, 10, "sell", 3),
    ]
    trades, rejects, _ = read_all(path, "ccxt_json")  # no symbol anywhere: a bad one
    assert [t.trade_id for t in trades] == [10] and rejects.examples == {"bad_symbol": [1, 2]}


def test_capture_messages_that_are_not_trades(tmp_path: Path) -> None:
    """Skipped by kind: its "e", "type" or "event", else its stream's name after the first @; arrays; the rest."""
    match = {"type": "match", "trade_id": 5, "product_id": "BTC-USD", "price": "100", "size": "2", "side": "sell"}
    lines = [
        f"1735689600.25: {json.dumps({**match, 'time': '2025-01-01T00:00:00.000000Z'})}",
        f"1735689600.5: {json.dumps({'event': 'heartbeat'})}",
        f"1735689600.5: {json.dumps({'stream': 'btcusdt@depth@100ms', 'data': {'bids': []}})}",
        "1735689600.5: [1, 2]",
        "1735689600.5: 7",
        f"1735689600.5: {json.dumps({'u': 1})}",
        "",
        "not a url <-> 1735689600.5",  # past the first line
        f"1735689600.75: {json.dumps({k: v for k, v in match.items() if k != 'size'})}",
        f"1735689601: {json.dumps({**match, 'type': 'last_match', 'side': 'buy', 'time': '2025-01-01T00:00:00.5Z'})}",
    ]
    path = write(tmp_path / "c.ws", "\n".join(lines) + "\n")
    rejects, skipped = Rejects(), Rejects()
    timed = list(read_timed(path, "ws_capture", rejects=rejects, skipped=skipped))
    assert [t for b, _ in timed for t in b.to_trades()] == [
        Trade("BTCUSD", 100.0, 2.0, T0, 5, "buy"),
        Trade("BTCUSD", 100.0, 2.0, T0 + 500, 5, "sell"),
    ]
    assert [c for _, clock in timed for c in clock.tolist()] == [1735689600250, 1735689601000]  # received at
    assert skipped.counts == {"heartbeat": 1, "depth@100ms": 1, "array": 1, "other": 2}
    assert rejects.examples == {"bad_line": [8], "missing_field": [9]}


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("name", "head", "fmt"),
    [
        ("c.ws", b"ws://localhost:9000/ws <-> 1735689600.0\n", "ws_capture"),
        ("c.json", b'[{"timestamp": 1, "info": {"result": 1}}]', "ccxt_json"),
        ("c.json", b'\n  [{"amount": 1, "price": 1}]', "ccxt_json"),
        ("c.json", b'[{"timestamp": 1, "price": 1}]', "ccxt_json"),
        ("k.json", b'{"error": [], "result": {}}', "kraken_json"),
        ("p.csv", BOM + b"1735689600000,BTCUSDT,1,1\n", "plain_csv"),
        ("p.csv", b"1735689600000,BTCUSDT\n", "plain_csv"),
        ("p.csv", b"ts\xff,symbol,price,qty\n2025-01-01,BTCUSDT,1,1\n", "plain_csv"),
        ("x.csv", b"1,2.5,4,10,12,1735689600000,true,true\n", "binance_aggtrades_csv"),
        ("x.csv", b"1,2.5,4,10,12,1735689600000,true\n", "binance_aggtrades_csv"),
        ("BTCUSDT-aggTrades-2025-01.csv", b"1,2.5,4,10,12,1735689600000\n", "binance_aggtrades_csv"),
        ("x.csv", b"1,2.5,4,10,12,1735689600000\n", "binance_trades_csv"),
        ("x.csv", b"1,2.5,4,10,1735689600000,true,0\n", "binance_trades_csv"),
    ],
)
def test_detection(tmp_path: Path, name: str, head: bytes, fmt: str) -> None:
    path = tmp_path / name
    path.write_bytes(head)
    assert detect_format(path) == fmt


@pytest.mark.parametrize(
    "head",
    [b'{"timestamp": 1, "amount": 1}', b"[1, 2]", b"a,b,c,d,e,f\n", b"1,2,3,4,5,x,7,8,9\n"],
)
def test_detection_refuses(tmp_path: Path, head: bytes) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(head)
    with pytest.raises(ValueError) as err:
        detect_format(path)
    assert str(err.value) == (
        f"cannot tell the format of {path}; pass one of: "
        "ws_capture, kraken_json, ccxt_json, plain_csv, binance_aggtrades_csv, binance_trades_csv"
    )


def test_a_bom_before_a_headerless_csv(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(BOM + f"{T0},BTCUSDT,1,1\n".encode())
    assert read_all(path)[0] == [Trade("BTCUSDT", 1.0, 1.0, T0, 1, "sell")]


# ---------------------------------------------------------------- entry points, limits, messages


def test_one_line_errors_before_reading(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", f"{T0},BTCUSDT,1,1\n")
    with pytest.raises(ValueError) as err:
        read_trades(path, "parquet", rejects=Rejects())
    assert str(err.value) == (
        "unknown trade format 'parquet'; choose from: "
        "ws_capture, kraken_json, ccxt_json, plain_csv, binance_aggtrades_csv, binance_trades_csv"
    )
    with pytest.raises(FileNotFoundError) as missing:
        read_trades(tmp_path / "nope.csv", "plain_csv", rejects=Rejects())
    assert str(missing.value) == f"trade file not found: {tmp_path / 'nope.csv'}"
    with pytest.raises(ValueError) as bad:
        read_trades(path, symbol="B$", rejects=Rejects())
    assert str(bad.value) == "bad symbol 'B$': use 2 to 20 letters or digits, like BTCUSDT"
    help_lines = format_help().splitlines()
    assert "plain_csv: ts_ms,symbol,price,qty[,side,trade_id] (header optional, side buy/sell)" in help_lines


def test_the_limits_hold_for_detection_and_reading(tmp_path: Path) -> None:
    path = tmp_path / "p.csv.gz"
    path.write_bytes(gzip.compress(b"".join(b"%d,BTCUSDT,1,1\n" % (T0 + i) for i in range(3000))))  # 78,000 bytes
    limits = ReadLimits(max_ratio=1, max_bytes=1000)
    message = (
        f"{path}: expands past 1,000 bytes (1× its size or 1,000 bytes): a decompression bomb? "
        "Raise CANDLES_READ_MAX_RATIO or CANDLES_READ_MAX_BYTES if the file is genuine"
    )
    with pytest.raises(TradeFileError) as err:
        detect_format(path, limits)
    assert str(err.value) == message
    with pytest.raises(TradeFileError) as err:
        read_trades(path, rejects=Rejects(), limits=limits)  # detecting the format fails at once
    assert str(err.value) == message
    with pytest.raises(TradeFileError) as err:
        read_all(path, "plain_csv", limits=limits)
    assert str(err.value) == message
    assert detect_format(path, ReadLimits(max_ratio=1, max_bytes=70_000)) == "plain_csv"  # reads the first 64 KiB
    assert len(read_all(path, "plain_csv", limits=ReadLimits(max_ratio=1, max_bytes=78_000))[0]) == 3000  # at the limit
    with pytest.raises(TradeFileError, match="expands past 77,999 bytes"):
        read_all(path, "plain_csv", limits=ReadLimits(max_ratio=1, max_bytes=77_999))


def test_a_truncated_gzip_fails_detection_with_one_line(tmp_path: Path) -> None:
    whole = gzip.compress(b"".join(b"%d,BTCUSDT,1,1\n" % (T0 + i) for i in range(100)))
    path = tmp_path / "p.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(TradeFileError) as err:
        detect_format(path)
    assert str(err.value) == f"{path}: the compressed data ends early (a truncated download?) (near the start)"


def test_rows_read_before_a_break_are_delivered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_blocks, "BLOCK_BYTES", 1000)
    path = tmp_path / "p.csv.gz"
    path.write_bytes(gzip.compress(b"".join(b"%d,BTCUSDT,1,1,buy,%d\n" % (T0, i) for i in range(10_000))))
    got: list[int] = []
    with pytest.raises(TradeFileError, match="expands past 100,000 bytes"):
        for batch in read_trades(path, rejects=Rejects(), limits=ReadLimits(max_ratio=1, max_bytes=100_000)):
            got += batch.trade_id.tolist()
    assert got and got == list(range(len(got)))  # the rows before the limit, in order, none lost


# ---------------------------------------------------------------- batches


def test_batches_are_full_chunks_of_typed_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_blocks, "BLOCK_BYTES", 90)  # two rows (34 bytes each) a block
    plain = write(tmp_path / "p.csv", "".join(f"{T0},BTCUSDT,1.5,2,buy,{i}\n" for i in range(10)))
    ccxt = write(tmp_path / "c.json", json.dumps([{"timestamp": T0, "price": 1, "amount": 1}] * 3))
    assert [len(b) for b in read_trades(plain, rejects=Rejects(), chunk=3)] == [3, 3, 3, 1]
    assert [len(b) for b in read_trades(ccxt, rejects=Rejects(), chunk=1, symbol="BTCUSDT")] == [1, 1, 1]
    for path in (plain, ccxt):
        batch = next(read_trades(path, rejects=Rejects(), symbol="BTCUSDT"))
        dtypes = [
            c.dtype for c in (batch.sym, batch.ts, batch.price, batch.qty, batch.trade_id, batch.taker_buy, batch.count)
        ]
        assert dtypes == [np.int32, np.int64, np.float64, np.float64, np.int64, np.bool_, np.int64]


def test_read_errors_in_words(tmp_path: Path) -> None:
    assert describe_read_error(ValueError()) == "ValueError"  # no message: its kind
    assert describe_read_error(OSError("disk full\nsecond line")) == "disk full"
    assert describe_read_error(RecursionError()) == "JSON nested deeper than the decoder allows"
    path = tmp_path / "c.ws"
    path.write_bytes(b"1735689600.5: " + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    with pytest.raises(TradeFileError) as err:
        read_all(path, "ws_capture")
    assert str(err.value) == f"{path}: JSON nested deeper than the decoder allows (near byte 200,015)"
