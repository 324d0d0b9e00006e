"""Readers for recorded trades: exchange CSV dumps, REST JSON, raw WebSocket captures.

Every reader streams ``TradeBatch`` chunks of validated trades and never raises
for a bad row: each one is counted in a ``Rejects`` by reason, with its line
number (or 1-based record number for JSON arrays), because a replay of real
data must say what it dropped and where. Messages that are not trades (depth,
tickers, klines, sent subscriptions) are counted in a separate ``skipped``
counter, not as rejects.

One helper, :class:`_Emitter`, does the work every reader shares: the symbol
table, per-row validation (``models.trade_problem``), and cutting the stream
into chunks. CSV is the format that gets big, so it has a fast path: the file
is memory-mapped and cut into blocks of a few MB, each parsed strictly by
pyarrow (typed columns, exact field counts) on a small thread pool while the
consumer works on the previous block; only a block the strict parse rejects is
halved until its bad lines are isolated and parsed line by line, so a few bad
rows cost little and every good row around them still comes through.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import functools
import gzip
import io
import logging
import mmap
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

import msgspec
import numpy as np
import pandas as pd

try:  # pyarrow's CSV reader is strict and multi-threaded; pandas' C parser is the fallback
    import pyarrow as pa
    import pyarrow.csv as pa_csv
except ImportError:  # pragma: no cover - pyarrow comes with streamlit
    pa = pa_csv = None

from backend.models import Rejects, TradeBatch, normalize_symbol, now_ms, trade_problem

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = (
    "binance_trades_csv",
    "binance_aggtrades_csv",
    "ccxt_json",
    "kraken_json",
    "ws_capture",
    "plain_csv",
)
DEFAULT_CHUNK = 10_000
_BLOCK_BYTES = 1 << 22  # CSV is parsed in blocks of about 4 MB
# A block the strict parse rejects is cut into _SPLIT pieces, each tried again; a failing piece of at most
# _SLOW_BYTES is parsed line by line. Each pyarrow call costs ~0.3 ms however small its input, about what
# the line parser takes for 10 KB, so the leaves stay that size (measured on 1M rows with 100 bad lines).
_SPLIT = 4
_SLOW_BYTES = 1 << 15
_SNIFF_BYTES = 1 << 16
_PARSE_THREADS = min(4, os.cpu_count() or 1)  # blocks parsed in parallel, each on one thread
_US_FROM = 10**14  # an epoch this large is in microseconds (in ms it would be year 5138)
_NS_FROM = 10**17
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BINANCE_NAME = re.compile(r"^([A-Za-z0-9]{2,20})-(trades|aggTrades)-", re.IGNORECASE)

T = TypeVar("T")
U = TypeVar("U")
TimedBatch = tuple[TradeBatch, np.ndarray]
"""A batch and its replay clock per row (ms): the trade time, or the receive time of a capture."""


class _Bad(Exception):
    """A row is unusable for ``reason``; caught per row, never escapes a reader."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Row(NamedTuple):
    symbol: str
    ts: int
    price: float
    qty: float
    trade_id: int
    taker_buy: bool
    count: int = 1
    clock: int | None = None  # receive time (ms) when it differs from ts


Parsed = _Row | str  # a trade, or the kind of a message that is skipped
Parser = Callable[[Any, int], Parsed]  # (record, line or record number) → parsed; raises _Bad


# ---------------------------------------------------------------- shared helpers


def epoch_ms(ts: int) -> int:
    """Milliseconds from an epoch in ms, µs (newer Binance dumps) or ns."""
    if ts >= _NS_FROM:
        return ts // 1_000_000
    return ts // 1000 if ts >= _US_FROM else ts


def _epoch_ms_array(ts: np.ndarray) -> np.ndarray:
    if len(ts) and ts.max() >= _US_FROM:
        return np.where(ts >= _NS_FROM, ts // 1_000_000, np.where(ts >= _US_FROM, ts // 1000, ts))
    return ts


def seconds_to_ms(value: str | float | Decimal) -> int:
    """Floor of seconds × 1000, exact on the decimal text (``1.001`` is 1001 ms, never 1000)."""
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value).strip())
        return int((d * 1000).to_integral_value(rounding=ROUND_FLOOR))
    except (InvalidOperation, ValueError, OverflowError):
        raise _Bad("not_numeric") from None


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _Bad("not_numeric") from None


def _int_or(value: object, default: int) -> int:
    """An id that may be missing or not numeric (ccxt ids are strings): file order then."""
    try:
        return _int(value)
    except _Bad:
        return default


def _int(value: object) -> int:
    if isinstance(value, bool):
        raise _Bad("not_numeric")
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        raise _Bad("not_numeric") from None


def _flag(value: object) -> bool:
    """A true/false field (Binance ``is_buyer_maker``, JSON ``m``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise _Bad("bad_side")


def _taker_buy(side: object) -> bool:
    """Taker side text → taker bought; an empty side is unknown and counts as a sell."""
    text = str(side).strip().lower()
    if text in ("buy", "b"):
        return True
    if text in ("sell", "s", ""):
        return False
    raise _Bad("bad_side")


class _Emitter:
    """What every reader shares: symbol table, per-row validation, chunking into ``TradeBatch``.

    Rows come either one by one (:meth:`feed`, validated here) or as columns
    already validated by the CSV fast path (:meth:`add_columns`); both keep file
    order. :meth:`drain` yields full chunks, or everything at the end.
    """

    def __init__(self, chunk: int, rejects: Rejects, skipped: Rejects, now: int) -> None:
        self.chunk = max(1, int(chunk))
        self.rejects = rejects
        self.skipped = skipped
        self.now = now
        self.table: dict[str, int] = {}
        self._codes: dict[str, int | None] = {}
        self._rows: list[tuple[int, int, float, float, int, bool, int, int]] = []
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._logged: dict[str, int] = {}  # reason → minute it was last logged
        self.pending = 0

    def reject(self, reason: str, line: int) -> None:
        """Count a bad row; log it once per reason and minute (DESIGN "Trades")."""
        self.rejects.add(reason, line=line)
        minute = time.monotonic_ns() // 60_000_000_000
        if self._logged.get(reason) != minute:
            self._logged[reason] = minute
            log.warning("rejected trade (%s) at line %d; totals so far: %s", reason, line, self.rejects.summary())

    def code(self, raw: object) -> int | None:
        """Symbol-table index of a raw symbol (normalised once per spelling); None when malformed."""
        if not isinstance(raw, str):
            return None
        code = self._codes.get(raw, -1)
        if code == -1:
            sym = normalize_symbol(raw)
            code = None if sym is None else self.table.setdefault(sym, len(self.table))
            self._codes[raw] = code
        return code

    def feed(self, line: int, record: Any, parse: Parser) -> None:
        """Parse and validate one record; a bad one is counted with its line, never raised."""
        try:
            row = parse(record, line)
            if isinstance(row, str):
                self.skipped.add(row)
                return
            code = self.code(row.symbol)
            if code is None:
                raise _Bad("bad_symbol")
            ts = epoch_ms(row.ts)
            problem = trade_problem(row.price, row.qty, ts, self.now)
            if problem:
                raise _Bad(problem)
            if row.count < 1:
                raise _Bad("bad_count")
        except _Bad as bad:
            self.reject(bad.reason, line)
            return
        clock = ts if row.clock is None else row.clock
        self._rows.append((code, ts, row.price, row.qty, row.trade_id, row.taker_buy, row.count, clock))
        self.pending += 1

    def add_columns(self, *cols: np.ndarray) -> None:
        """Append validated columns ``sym, ts, price, qty, trade_id, taker_buy, count, clock``."""
        self._flush_rows()
        self._parts.append(_typed(cols))
        self.pending += len(cols[0])

    def _flush_rows(self) -> None:
        if self._rows:
            self._parts.append(_typed(tuple(np.array(c) for c in zip(*self._rows, strict=True))))
            self._rows = []

    def drain(self, final: bool = False) -> Iterator[TimedBatch]:
        """Yield chunks of ``chunk`` rows (all that is left when ``final``); views where a chunk lies in one part."""
        self._flush_rows()
        symbols = list(self.table)
        while self.pending >= self.chunk or (final and self.pending):
            take, pieces = min(self.chunk, self.pending), []
            while take:
                head = self._parts[0]
                n = min(take, len(head[0]))
                pieces.append(tuple(c[:n] for c in head))
                if n == len(head[0]):
                    self._parts.pop(0)
                else:
                    self._parts[0] = tuple(c[n:] for c in head)
                take -= n
                self.pending -= n
            cols = pieces[0] if len(pieces) == 1 else tuple(map(np.concatenate, zip(*pieces, strict=True)))
            yield TradeBatch(symbols, *cols[:7], rejects=self.rejects), cols[7]


_DTYPES = (np.int32, np.int64, np.float64, np.float64, np.int64, bool, np.int64, np.int64)


def _typed(cols: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(c, dtype=d) for c, d in zip(cols, _DTYPES, strict=True))


# ---------------------------------------------------------------- files


def _open(path: Path) -> IO[bytes]:
    """The file's bytes, transparently un-gzipped or taken from a one-file zip (data.binance.vision)."""
    if not path.is_file():
        raise FileNotFoundError(f"trade file not found: {path}")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path)  # type: ignore[return-value]
    if magic == b"PK\x03\x04":
        archive = zipfile.ZipFile(path)
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if not names:
            raise ValueError(f"{path}: the zip archive is empty")
        return archive.open(names[0])
    return path.open("rb")


def _symbol_from_name(path: Path) -> str | None:
    """``BTCUSDT-aggTrades-2024-01-01.csv`` → ``BTCUSDT`` (data.binance.vision naming)."""
    m = _BINANCE_NAME.match(path.name)
    return normalize_symbol(m.group(1)) if m else None


# ---------------------------------------------------------------- CSV


@dataclass(frozen=True)
class _CsvLayout:
    """Where the fields of one CSV format are (0-based columns)."""

    min_fields: int
    max_fields: int
    ts: int
    price: int
    qty: int
    trade_id: int | None = None
    first_last: tuple[int, int] | None = None  # aggTrades: raw trade ids it stands for
    buyer_maker: int | None = None  # Binance: True when the taker sold
    side: int | None = None  # plain CSV: taker side buy/sell
    symbol: int | None = None

    def kinds(self, nfields: int) -> dict[int, str]:
        """The columns the fast parse converts (``int float bool str``), for lines of ``nfields`` fields."""
        kinds = {self.ts: "int", self.price: "float", self.qty: "float"}
        for col, kind in (
            (self.trade_id, "int"),
            *((c, "int") for c in self.first_last or ()),
            (self.buyer_maker, "bool"),
            (self.symbol, "str"),
            (self.side, "str"),
        ):
            if col is not None and col < nfields:
                kinds[col] = kind
        return kinds


_LAYOUTS: dict[str, _CsvLayout] = {
    # id,price,qty,quote_qty,time,is_buyer_maker[,is_best_match]
    "binance_trades_csv": _CsvLayout(6, 7, ts=4, price=1, qty=2, trade_id=0, buyer_maker=5),
    # agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker[,is_best_match]
    "binance_aggtrades_csv": _CsvLayout(7, 8, ts=5, price=1, qty=2, trade_id=0, first_last=(3, 4), buyer_maker=6),
    # ts_ms,symbol,price,qty[,side,trade_id]
    "plain_csv": _CsvLayout(4, 6, ts=0, price=2, qty=3, trade_id=5, side=4, symbol=1),
}

Column = np.ndarray | tuple[np.ndarray, list[str]]  # numbers, or (codes, distinct strings)
Block = bytes | memoryview  # whole lines; a memoryview of a memory-mapped file costs no copy


@functools.lru_cache(maxsize=64)
def _arrow_options(nfields: int, kinds: tuple[tuple[int, str], ...]) -> tuple[Any, Any]:
    """Parse and convert options for lines of ``nfields`` fields (built once: they cost more than a small parse)."""
    types = {
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "str": pa.dictionary(pa.int32(), pa.string()),  # decoded straight into codes + distinct strings
    }
    parse = pa_csv.ParseOptions(ignore_empty_lines=False)
    convert = pa_csv.ConvertOptions(
        column_types={str(c): types[k] for c, k in kinds},
        include_columns=[str(c) for c, _ in kinds],
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    return parse, convert


def _columns_arrow(block: Block, nfields: int, kinds: dict[int, str]) -> dict[int, Column] | None:
    """Strict parse of one block with pyarrow; None when any line does not fit the types."""
    parse, convert = _arrow_options(nfields, tuple(kinds.items()))
    # one chunk per block, so columns come out without a copy
    read = pa_csv.ReadOptions(column_names=[str(i) for i in range(nfields)], block_size=len(block) + 1)
    try:
        table = pa_csv.read_csv(pa.py_buffer(block), read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, ValueError):  # wrong field count, empty or non-numeric field
        return None
    out: dict[int, Column] = {}
    for col, kind in kinds.items():
        values = table.column(str(col))
        if kind == "str":
            enc = values.combine_chunks()  # a single chunk: no copy
            out[col] = (enc.indices.to_numpy(zero_copy_only=False), enc.dictionary.to_pylist())
        else:
            out[col] = values.to_numpy()
    return out


def _columns_pandas(block: Block, nfields: int, kinds: dict[int, str]) -> dict[int, Column] | None:
    """The same with pandas' C parser, when pyarrow is not installed."""
    types = {"int": np.int64, "float": np.float64, "bool": bool, "str": object}
    try:
        df = pd.read_csv(
            io.BytesIO(block),
            header=None,
            names=range(nfields),
            dtype={c: types[k] for c, k in kinds.items()},
            engine="c",
            na_filter=False,
            skip_blank_lines=False,
        )
    except (ValueError, OverflowError):
        return None
    out: dict[int, Column] = {}
    for col, kind in kinds.items():
        values = df[col].to_numpy()
        if kind == "str":
            codes, distinct = pd.factorize(values)
            out[col] = (codes, list(distinct))
        else:
            out[col] = values
    return out


_columns = _columns_arrow if pa_csv is not None else _columns_pandas


def _blocks(stream: IO[bytes]) -> Iterator[Block]:
    """Whole lines, a few MB at a time, streaming; a UTF-8 byte-order mark is dropped.

    A plain file is memory-mapped and cut into zero-copy views; a compressed
    stream is read and cut into bytes.
    """
    mapped = None
    if isinstance(stream, io.BufferedReader):  # a plain file (gzip and zip streams report the raw file's fd)
        with contextlib.suppress(OSError, ValueError):  # an empty file cannot be mapped
            mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    if mapped is not None:
        view, size = memoryview(mapped), len(mapped)
        start = 3 if mapped[:3] == b"\xef\xbb\xbf" else 0
        while start < size:
            end = min(start + _BLOCK_BYTES, size)
            if end < size:
                cut = mapped.rfind(b"\n", start, end)
                cut = mapped.find(b"\n", end) if cut < 0 else cut  # a line longer than a block
                end = size if cut < 0 else cut + 1
            yield view[start:end]
            start = end
        return
    rest = b""
    while data := stream.read(_BLOCK_BYTES):
        cut = data.rfind(b"\n") + 1
        if not cut:
            rest += data
            continue
        yield b"".join((rest, memoryview(data)[:cut])).removeprefix(b"\xef\xbb\xbf")
        rest = data[cut:]
    if rest:
        yield rest.removeprefix(b"\xef\xbb\xbf")


def _first_line(block: Block) -> bytes:
    head = bytes(block[:65_536])
    end = head.find(b"\n")
    return head if end < 0 else head[:end]


def _ordered_map(fn: Callable[[T], U], items: Iterator[T]) -> Iterator[U]:
    """``map(fn, items)`` on a few threads, a few items ahead of the consumer, in order.

    pyarrow parses without holding the GIL, so blocks are parsed in parallel
    with each other and with the consumer (the aggregator). Closing the
    iterator cancels what has not started.
    """
    pending: collections.deque[Future[U]] = collections.deque()
    with ThreadPoolExecutor(_PARSE_THREADS, thread_name_prefix="trade-file") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > _PARSE_THREADS:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _split(text: str) -> list[str]:
    return next(csv.reader([text])) if '"' in text else text.split(",")


def _is_number(text: str) -> bool:
    try:
        float(text.strip().strip('"'))
    except ValueError:
        return False
    return True


def _parts(block: bytes, n: int) -> list[bytes]:
    """``block`` cut into about ``n`` pieces of whole lines."""
    cuts, start = [], 0
    for i in range(1, n):
        end = block.find(b"\n", max(start, len(block) * i // n)) + 1
        if end <= start:
            break
        cuts.append(block[start:end])
        start = end
    return [*cuts, block[start:]] if start < len(block) else cuts


def _lines_in(block: bytes) -> int:
    return block.count(b"\n") + (not block.endswith(b"\n"))


class _CsvReader:
    """One CSV layout: a strict vectorised parse per block; line by line only where it fails."""

    def __init__(self, layout: _CsvLayout, em: _Emitter, default_symbol: str | None) -> None:
        self.layout = layout
        self.em = em
        self.default_symbol = default_symbol or ""
        self.default_code = em.code(default_symbol) if default_symbol else None

    @staticmethod
    def data_blocks(stream: IO[bytes]) -> Iterator[tuple[int, Block]]:
        """``(lines skipped before it, block)``: blocks of whole lines, the header row taken off the first."""
        for i, block in enumerate(_blocks(stream)):
            first = _first_line(block) if i == 0 else b""
            if first.strip() and not _is_number(_split(first.decode("utf-8", "replace"))[0]):
                yield 1, block[len(first) + 1 :]
            else:
                yield 0, block

    def parsed(self, item: tuple[int, Block]) -> tuple[int, Block, dict[int, Column] | None]:
        """The pure, thread-safe part: a block's columns (None when the strict parse fails)."""
        skip, block = item
        return skip, block, self.columns(block)

    def columns(self, block: Block) -> dict[int, Column] | None:
        nfields = _first_line(block).count(b",") + 1
        lay = self.layout
        return _columns(block, nfields, lay.kinds(nfields)) if lay.min_fields <= nfields <= lay.max_fields else None

    def read(self, stream: IO[bytes]) -> Iterator[TimedBatch]:
        line = 1
        for skip, block, cols in _ordered_map(self.parsed, self.data_blocks(stream)):
            line += skip
            line += self.block(block, line, cols)
            if self.em.pending >= self.em.chunk:
                yield from self.em.drain()
        yield from self.em.drain(final=True)

    def block(self, block: Block, line: int, cols: dict[int, Column] | None = None) -> int:
        """Take a block whole when its parse succeeded, else split it until the bad lines are isolated.

        Returns the number of lines consumed.
        """
        if not block:
            return 0
        n = self.fast(block, line, cols if cols is not None else self.columns(block))
        if n is not None:
            return n
        block = bytes(block)
        if len(block) <= _SLOW_BYTES:
            for i, text in enumerate(block.decode("utf-8", "replace").split("\n")):
                if text.strip():
                    self.em.feed(line + i, text, self.parse_line)
            return _lines_in(block)
        consumed = 0
        for part in _parts(block, _SPLIT):
            consumed += self.block(part, line + consumed)
        return consumed

    def fast(self, block: Block, line: int, cols: dict[int, Column] | None) -> int | None:
        """Take a block's parsed columns: the number of rows (one per line), or None when the parse failed.

        Rows that parsed but are unusable (bad price, symbol, side, …) are found
        here in bulk and only their lines go to the line parser, which names the
        reason; every other row is taken as parsed.
        """
        if cols is None:
            return None
        lay, em = self.layout, self.em
        nfields = _first_line(block).count(b",") + 1
        price, qty, ts = cols[lay.price], cols[lay.qty], _epoch_ms_array(cols[lay.ts])
        n = len(ts)
        has = lambda col: col is not None and col < nfields  # noqa: E731
        tid = cols[lay.trade_id] if has(lay.trade_id) else np.arange(line, line + n, dtype=np.int64)
        count = cols[lay.first_last[1]] - cols[lay.first_last[0]] + 1 if lay.first_last else np.ones(n, np.int64)
        bad = count < 1
        if lay.buyer_maker is not None:
            buy = ~cols[lay.buyer_maker]
        elif has(lay.side):
            buy = _mapped(cols[lay.side], _taker_buy, bad)
        else:
            buy = np.zeros(n, dtype=bool)
        sym = _mapped(cols[lay.symbol], em.code, bad) if has(lay.symbol) else np.full(n, self.default_code or 0)
        rows = (sym, ts, price, qty, tid, buy, count, ts)
        # validated() drops unusable trades: with the row number as id, what it keeps says which rows are good
        probe = TradeBatch([], sym, ts, price, qty, np.arange(n), buy, count, Rejects()).validated(em.now)
        if len(probe) == n and not bad.any():
            em.add_columns(*rows)
            return n
        good = np.zeros(n, dtype=bool)
        good[probe.trade_id] = True
        good &= ~bad
        em.add_columns(*(c[good] for c in rows))
        for i, text in _lines_at(block, np.flatnonzero(~good)):
            em.feed(line + i, text, self.parse_line)
        return n

    def parse_line(self, text: str, line: int) -> _Row:
        """The slow path: one CSV line → a row, or ``_Bad`` naming what is wrong with it."""
        lay = self.layout
        f = _split(text.strip())
        if len(f) < lay.min_fields:
            raise _Bad("truncated")
        if len(f) > lay.max_fields:
            raise _Bad("too_many_fields")
        has = lambda col: col is not None and col < len(f) and f[col].strip() != ""  # noqa: E731
        price, qty, ts = _float(f[lay.price]), _float(f[lay.qty]), _int(f[lay.ts])
        tid = _int(f[lay.trade_id]) if has(lay.trade_id) else line
        count = _int(f[lay.first_last[1]]) - _int(f[lay.first_last[0]]) + 1 if lay.first_last else 1
        if lay.buyer_maker is not None:
            buy = not _flag(f[lay.buyer_maker])
        else:
            buy = has(lay.side) and _taker_buy(f[lay.side])  # type: ignore[index]
        symbol = f[lay.symbol] if lay.symbol is not None else self.default_symbol
        return _Row(symbol, ts, price, qty, tid, buy, count)


def _mapped(column: Column, fn: Callable[[str], Any], bad: np.ndarray) -> np.ndarray:
    """Apply ``fn`` once per distinct string of a column; rows with a bad value (``_Bad``, None) are set in ``bad``."""
    codes, distinct = column  # type: ignore[misc]
    values, ok = [], []
    for text in distinct:
        try:
            value = fn(text)
        except _Bad:
            value = None
        ok.append(value is not None)
        values.append(0 if value is None else value)
    if not all(ok):
        bad |= ~np.asarray(ok, dtype=bool)[codes]
    return np.asarray(values)[codes] if values else np.zeros(len(codes), dtype=np.int64)


def _lines_at(block: Block, rows: np.ndarray) -> Iterator[tuple[int, str]]:
    """``(row, text)`` of the given 0-based lines of a block."""
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n"))
    starts = np.concatenate([[0], ends + 1])
    ends = np.append(ends, len(block))
    for row in rows.tolist():
        yield row, bytes(block[starts[row] : ends[row]]).decode("utf-8", "replace")


# ---------------------------------------------------------------- JSON


def _ccxt_trade(default_symbol: str) -> Parser:
    def parse(rec: Any, line: int) -> Parsed:
        """A ccxt trade; its ``info`` Binance aggTrade (a,p,q,f,l,T,m) is exact when present."""
        if not isinstance(rec, dict):
            raise _Bad("bad_record")
        symbol = rec.get("symbol") or default_symbol
        info = rec.get("info")
        try:
            if isinstance(info, dict) and "a" in info and "T" in info:
                count = _int(info["l"]) - _int(info["f"]) + 1 if "f" in info else 1
                price, qty = _float(info["p"]), _float(info["q"])
                return _Row(symbol, _int(info["T"]), price, qty, _int(info["a"]), not _flag(info["m"]), count)
            price, qty, ts = _float(rec["price"]), _float(rec["amount"]), _int(rec["timestamp"])
            return _Row(symbol, ts, price, qty, _int_or(rec.get("id"), line), _taker_buy(rec.get("side") or ""))
        except KeyError:
            raise _Bad("missing_field") from None

    return parse


def _kraken_trade(symbol: str) -> Parser:
    def parse(rec: Any, line: int) -> Parsed:
        """``[price, volume, time_s, "b"|"s", "l"|"m", misc, trade_id]``; time kept exact as Decimal."""
        if not isinstance(rec, list):
            raise _Bad("bad_record")
        if len(rec) < 4:
            raise _Bad("truncated")
        tid = _int(rec[6]) if len(rec) > 6 else line  # older answers have no trade id
        return _Row(symbol, seconds_to_ms(rec[2]), _float(rec[0]), _float(rec[1]), tid, _taker_buy(rec[3]))

    return parse


def _read_ccxt(stream: IO[bytes], em: _Emitter, symbol: str | None) -> Iterator[TimedBatch]:
    records = _decode_json(stream.read(), msgspec.json.Decoder())
    if not isinstance(records, list):
        raise ValueError("ccxt trade JSON must be an array of trades")
    parse = _ccxt_trade(symbol or "")
    for i, rec in enumerate(records, 1):
        em.feed(i, rec, parse)
        if em.pending >= em.chunk:
            yield from em.drain()
    yield from em.drain(final=True)


def _read_kraken(stream: IO[bytes], em: _Emitter, symbol: str | None) -> Iterator[TimedBatch]:
    doc = _decode_json(stream.read(), msgspec.json.Decoder(float_hook=Decimal))
    if not isinstance(doc, dict) or not isinstance(doc.get("result"), dict):
        raise ValueError('Kraken trades JSON must be {"error": [...], "result": {PAIR: [...], "last": ...}}')
    if doc.get("error"):
        raise ValueError(f"Kraken answered with an error: {doc['error']}")
    for pair, records in doc["result"].items():
        if pair == "last" or not isinstance(records, list):
            continue
        parse = _kraken_trade(symbol or pair)
        for i, rec in enumerate(records, 1):
            em.feed(i, rec, parse)
            if em.pending >= em.chunk:
                yield from em.drain()
    yield from em.drain(final=True)


def _decode_json(data: bytes, decoder: msgspec.json.Decoder) -> Any:
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as e:
        raise ValueError(f"not valid JSON: {e}") from None


# ---------------------------------------------------------------- WebSocket captures

_CAPTURE_LINE = re.compile(rb"^\s*(\d+(?:\.\d+)?):\s?(.*)$", re.DOTALL)
_SENT_LINE = re.compile(rb"^\S+ <-[ >]")


def _ws_message(recv_ms: int) -> Parser:
    def parse(msg: Any, line: int) -> Parsed:
        """A Binance trade/aggTrade event (raw or in a combined-stream wrapper) or a Coinbase match."""
        stream = ""
        if isinstance(msg, dict) and isinstance(msg.get("data"), dict) and "stream" in msg:
            stream, msg = str(msg["stream"]), msg["data"]
        if not isinstance(msg, dict):
            return "array" if isinstance(msg, list) else "other"
        # spot bookTicker events carry no "e": name them by their stream (btcusdt@bookTicker)
        kind = msg.get("e") or msg.get("type") or msg.get("event") or stream.partition("@")[2] or "other"
        try:
            if kind == "trade" and "s" in msg:
                ts, tid, count = _int(msg["T"]), _int(msg["t"]), 1
            elif kind == "aggTrade":
                ts, tid, count = _int(msg["T"]), _int(msg["a"]), _int(msg["l"]) - _int(msg["f"]) + 1
            elif kind in ("match", "last_match"):  # Coinbase: side is the maker's
                price, qty, buy = _float(msg["price"]), _float(msg["size"]), str(msg["side"]).lower() == "sell"
                return _Row(msg["product_id"], _iso_ms(msg["time"]), price, qty, _int(msg["trade_id"]), buy, 1, recv_ms)
            else:
                return str(kind)
            return _Row(msg["s"], ts, _float(msg["p"]), _float(msg["q"]), tid, not _flag(msg["m"]), count, recv_ms)
        except KeyError:
            raise _Bad("missing_field") from None

    return parse


def _iso_ms(text: object) -> int:
    """ISO 8601 time (Coinbase: microseconds, ``Z``) → epoch ms, exact integer arithmetic."""
    try:
        dt = datetime.fromisoformat(str(text))
    except ValueError:
        raise _Bad("bad_time") from None
    if dt.tzinfo is None:
        raise _Bad("bad_time")
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def _read_ws_capture(stream: IO[bytes], em: _Emitter) -> Iterator[TimedBatch]:
    """``<recv_s>: <json>`` per line (cryptofeed); header and sent lines are skipped."""
    decoder = msgspec.json.Decoder()
    for line, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        m = _CAPTURE_LINE.match(raw)
        if m is None:
            if line == 1 and b"<->" in raw:  # the subscribed URL
                continue
            if _SENT_LINE.match(raw):
                em.skipped.add("sent")
                continue
            em.reject("bad_line", line)
            continue
        try:
            recv = seconds_to_ms(m.group(1).decode())
            msg = decoder.decode(m.group(2))
        except (_Bad, msgspec.DecodeError):
            em.reject("bad_json", line)
            continue
        em.feed(line, msg, _ws_message(recv))
        if em.pending >= em.chunk:
            yield from em.drain()
    yield from em.drain(final=True)


# ---------------------------------------------------------------- detection and entry points


def detect_format(path: str | Path) -> str:
    """The format name of a trade file, from its first bytes (and its name for Binance dumps)."""
    path = Path(path)
    with _open(path) as f:
        head = f.read(_SNIFF_BYTES)
    text = head.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")
    stripped = text.lstrip()
    if not stripped:
        raise ValueError(f"{path} is empty: cannot detect its format")
    if stripped.startswith(("ws://", "wss://")) or re.match(r"\d{9,11}(\.\d+)?: [\[{]", stripped):
        return "ws_capture"
    if stripped[0] == "{" and '"result"' in text:
        return "kraken_json"
    if stripped[0] == "[" and ('"timestamp"' in text or '"amount"' in text):
        return "ccxt_json"
    lines = [ln for ln in stripped.splitlines() if ln.strip()]
    first = _split(lines[0].strip())
    if not _is_number(first[0]):  # a header row names the columns
        names = {n.strip().strip('"').lower() for n in first}
        if "symbol" in names:
            return "plain_csv"
        if names & {"agg_trade_id", "first_trade_id", "transact_time"}:
            return "binance_aggtrades_csv"
        if names & {"quote_qty", "is_buyer_maker"}:
            return "binance_trades_csv"
        first = _split(lines[1].strip()) if len(lines) > 1 else first
    if len(first) >= 2 and _is_number(first[0]) and not _is_number(first[1]):
        return "plain_csv"
    if all(_is_number(x) for x in first[:5]):
        if "aggtrades" in path.name.lower() or len(first) == 8:
            return "binance_aggtrades_csv"
        if len(first) == 6 or (len(first) == 7 and not _is_number(first[5])):
            return "binance_trades_csv"
        if len(first) == 7:
            return "binance_aggtrades_csv"
    raise ValueError(f"cannot tell the format of {path}; pass one of: {', '.join(FORMATS)}")


def read_timed(
    path: str | Path,
    fmt: str | None = None,
    *,
    rejects: Rejects,
    skipped: Rejects | None = None,
    chunk: int = DEFAULT_CHUNK,
    symbol: str | None = None,
) -> Iterator[TimedBatch]:
    """Like :func:`read_trades`, with each batch's replay clock (ms per row) for paced replays."""
    fmt, symbol = check_file(path, fmt, symbol)
    stream = _open(Path(path))  # raises before the generator starts, so a missing file fails at once
    return _generate(stream, fmt, _Emitter(chunk, rejects, skipped or Rejects(), now_ms()), symbol)


def check_file(path: str | Path, fmt: str | None = None, symbol: str | None = None) -> tuple[str, str | None]:
    """``(format, default symbol)`` of a trade file, or a one-line error before any reading starts."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown trade format {fmt!r}; choose from: {', '.join(FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"trade file not found: {path}")
    if symbol is not None and normalize_symbol(symbol) is None:
        raise ValueError(f"bad symbol {symbol!r}: use 2 to 20 letters or digits, like BTCUSDT")
    symbol = symbol or _symbol_from_name(path)
    if fmt.startswith("binance_") and symbol is None:
        raise ValueError(f"cannot tell the symbol of {path.name}: name it like BTCUSDT-trades-2024-01-01.csv")
    return fmt, symbol


def _generate(stream: IO[bytes], fmt: str, em: _Emitter, symbol: str | None) -> Iterator[TimedBatch]:
    with stream:
        if fmt == "ccxt_json":
            yield from _read_ccxt(stream, em, symbol)
        elif fmt == "kraken_json":
            yield from _read_kraken(stream, em, symbol)
        elif fmt == "ws_capture":
            yield from _read_ws_capture(stream, em)
        else:
            yield from _CsvReader(_LAYOUTS[fmt], em, symbol).read(stream)


def read_trades(
    path: str | Path,
    fmt: str | None = None,
    *,
    rejects: Rejects,
    skipped: Rejects | None = None,
    chunk: int = DEFAULT_CHUNK,
    symbol: str | None = None,
) -> Iterator[TradeBatch]:
    """Validated trades of a file, streamed in batches of at most ``chunk`` rows.

    ``fmt`` is one of :data:`FORMATS` (detected from the content when None);
    ``symbol`` names the symbol of Binance CSV dumps when the file name does not
    (``BTCUSDT-trades-2024-01-01.csv``). Bad rows are counted in ``rejects``
    with their line (record) numbers; non-trade messages in ``skipped``.
    A missing file raises FileNotFoundError, an unknown format ValueError.
    """
    timed = read_timed(path, fmt, rejects=rejects, skipped=skipped, chunk=chunk, symbol=symbol)
    return (batch for batch, _ in timed)
