"""The reader of every CSV trade format: a strict vectorised parse per block, line by line only where it fails.

A CSV format is a :class:`CsvLayout` (which column holds what) handed to
:func:`csv_format`. Each block is parsed strictly into typed columns; rows that
parsed but are unusable are found in bulk and only their lines go to the line
parser, which names the reason. A block the strict parse rejects is halved
until its bad lines are isolated, so a few bad rows cost little and every good
row around them still comes through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from backend.models import Rejects, TradeBatch
from backend.sources.fields import Bad, as_float, as_int, epoch_ms_array, flag, taker_buy
from backend.sources.formats import csv_blocks, csv_columns
from backend.sources.formats.csv_blocks import Block, first_line, is_number, lines_at, lines_in, parts, split
from backend.sources.formats.csv_columns import Column, Kinds
from backend.sources.formats.emitter import Emitter, Row, TimedBatch
from backend.sources.formats.spec import Format, Sniff


@dataclass(frozen=True)
class CsvLayout:
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

    def kinds(self, nfields: int) -> Kinds:
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


def csv_format(
    name: str,
    description: str,
    layout: CsvLayout,
    *,
    header: frozenset[str],
    data_row: Callable[[Sniff], bool],
    needs_symbol: bool = False,
) -> Format:
    """A CSV format: recognised by a header naming one of ``header``, or without a known header by ``data_row``."""

    def detect(sniff: Sniff) -> bool:
        return sniff.names_any(header) or (not sniff.header_known and data_row(sniff))

    def read(stream: IO[bytes], em: Emitter, symbol: str | None) -> Iterator[TimedBatch]:
        return CsvReader(layout, em, symbol).read(stream)

    return Format(name, description, detect, read, header=header, needs_symbol=needs_symbol)


class CsvReader:
    """One CSV layout: a strict vectorised parse per block; line by line only where it fails."""

    def __init__(self, layout: CsvLayout, em: Emitter, default_symbol: str | None) -> None:
        self.layout = layout
        self.em = em
        self.default_symbol = default_symbol or ""
        self.default_code = em.code(default_symbol) if default_symbol else None

    @staticmethod
    def data_blocks(stream: IO[bytes]) -> Iterator[tuple[int, Block]]:
        """``(lines skipped before it, block)``: blocks of whole lines, the header row taken off the first."""
        for i, block in enumerate(csv_blocks.blocks(stream)):
            first = first_line(block) if i == 0 else b""
            if first.strip() and not is_number(split(first.decode("utf-8", "replace"))[0]):
                yield 1, block[len(first) + 1 :]
            else:
                yield 0, block

    def parsed(self, item: tuple[int, Block]) -> tuple[int, Block, dict[int, Column] | None]:
        """The pure, thread-safe part: a block's columns (None when the strict parse fails)."""
        skip, block = item
        return skip, block, self.columns(block)

    def columns(self, block: Block) -> dict[int, Column] | None:
        nfields = first_line(block).count(b",") + 1
        lay = self.layout
        if not lay.min_fields <= nfields <= lay.max_fields:
            return None
        return csv_columns.columns(block, nfields, lay.kinds(nfields))

    def read(self, stream: IO[bytes]) -> Iterator[TimedBatch]:
        line = 1
        for skip, block, cols in csv_blocks.ordered_map(self.parsed, self.data_blocks(stream)):
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
        if len(block) <= csv_blocks.SLOW_BYTES:
            for i, text in enumerate(block.decode("utf-8", "replace").split("\n")):
                if text.strip():
                    self.em.feed(line + i, text, self.parse_line)
            return lines_in(block)
        consumed = 0
        for part in parts(block, csv_blocks.SPLIT):
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
        nfields = first_line(block).count(b",") + 1
        price, qty, ts = cols[lay.price], cols[lay.qty], epoch_ms_array(cols[lay.ts])
        n = len(ts)
        has = lambda col: col is not None and col < nfields  # noqa: E731
        tid = cols[lay.trade_id] if has(lay.trade_id) else np.arange(line, line + n, dtype=np.int64)
        count = cols[lay.first_last[1]] - cols[lay.first_last[0]] + 1 if lay.first_last else np.ones(n, np.int64)
        bad = count < 1
        if lay.buyer_maker is not None:
            buy = ~cols[lay.buyer_maker]
        elif has(lay.side):
            buy = _mapped(cols[lay.side], taker_buy, bad)
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
        for i, text in lines_at(block, np.flatnonzero(~good)):
            em.feed(line + i, text, self.parse_line)
        return n

    def parse_line(self, text: str, line: int) -> Row:
        """The slow path: one CSV line → a row, or ``Bad`` naming what is wrong with it."""
        lay = self.layout
        f = split(text.strip())
        if len(f) < lay.min_fields:
            raise Bad("truncated")
        if len(f) > lay.max_fields:
            raise Bad("too_many_fields")
        has = lambda col: col is not None and col < len(f) and f[col].strip() != ""  # noqa: E731
        price, qty, ts = as_float(f[lay.price]), as_float(f[lay.qty]), as_int(f[lay.ts])
        tid = as_int(f[lay.trade_id]) if has(lay.trade_id) else line
        count = as_int(f[lay.first_last[1]]) - as_int(f[lay.first_last[0]]) + 1 if lay.first_last else 1
        maker = lay.buyer_maker  # Binance: a flag; else a taker side, if the line has one
        buy = not flag(f[maker]) if maker is not None else has(lay.side) and taker_buy(f[lay.side])  # type: ignore[index]
        symbol = f[lay.symbol] if lay.symbol is not None else self.default_symbol
        return Row(symbol, ts, price, qty, tid, buy, count)


def _mapped(column: Column, fn: Callable[[str], Any], bad: np.ndarray) -> np.ndarray:
    """Apply ``fn`` once per distinct string of a column; rows with a bad value (``Bad``, None) are set in ``bad``."""
    codes, distinct = column  # type: ignore[misc]
    values, ok = [], []
    for text in distinct:
        try:
            value = fn(text)
        except Bad:
            value = None
        ok.append(value is not None)
        values.append(0 if value is None else value)
    if not all(ok):
        bad |= ~np.asarray(ok, dtype=bool)[codes]
    return np.asarray(values)[codes] if values else np.zeros(len(codes), dtype=np.int64)
