"""What every file reader shares: the symbol table, per-row validation, and cutting the stream into batches.

A reader hands rows to one :class:`Emitter`, either one by one (validated
here, a bad one counted with its line number) or as whole columns the CSV fast
path already validated; the emitter keeps file order and yields ``TradeBatch``
chunks with each row's replay clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

from backend.models import Rejects, TradeBatch, normalize_symbol, trade_problem
from backend.sources.fields import Bad, epoch_ms

log = logging.getLogger(__package__)  # backend.sources.formats

TimedBatch = tuple[TradeBatch, np.ndarray]
"""A batch and its replay clock per row (ms): the trade time, or the receive time of a capture."""


class Row(NamedTuple):
    """One trade as a reader parsed it, before validation."""

    symbol: str
    ts: int
    price: float
    qty: float
    trade_id: int
    taker_buy: bool
    count: int = 1
    clock: int | None = None  # receive time (ms) when it differs from ts


Parsed = Row | str  # a trade, or the kind of a message that is skipped
Parser = Callable[[Any, int], Parsed]  # (record, line or record number) → parsed; raises Bad

_DTYPES = (np.int32, np.int64, np.float64, np.float64, np.int64, bool, np.int64, np.int64)


class Emitter:
    """Symbol table, per-row validation, chunking into ``TradeBatch``.

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
                raise Bad("bad_symbol")
            ts = epoch_ms(row.ts)
            problem = trade_problem(row.price, row.qty, ts, self.now)
            if problem:
                raise Bad(problem)
            if row.count < 1:
                raise Bad("bad_count")
        except Bad as bad:
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

    def feed_records(self, records: Iterable[Any], parse: Parser) -> Iterator[TimedBatch]:
        """Feed records numbered from 1 through ``parse``, yielding each chunk as it fills (the rest stays)."""
        for number, record in enumerate(records, 1):
            self.feed(number, record, parse)
            if self.pending >= self.chunk:
                yield from self.drain()


def _typed(cols: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(c, dtype=d) for c, d in zip(cols, _DTYPES, strict=True))
