"""Candles to a CSV or JSON-lines file, in (symbol, interval duration, open_time) order, in bounded memory.

The offline command sees closed candles in event order, every symbol and
interval interleaved, and may see billions of them; the file wants them
grouped by stream. Each stream's candles already arrive in ``open_time``
order, so they are formatted as they come, kept per stream, and appended to
one spill file per stream whenever the buffered text passes a bound; at the
end the streams are copied out in order, each followed by its open candle.
Memory is the bound plus the aggregator's open candles, whatever the input.

Formatting is one ``%`` per row: a float cell is ``repr`` (shortest round
trip), an int its digits, ``closed`` is ``true``/``false``, lines end in
``\\r\\n`` (the csv module's dialect). No cell needs quoting: symbols are
letters and digits, intervals are fixed names.
"""

from __future__ import annotations

import operator
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import msgspec

from backend.intervals import INTERVALS_MS
from backend.models import Candle

OUTPUT_FIELDS = tuple(f for f in ("type", *Candle.__struct_fields__) if f != "emitted_at")
_CELLS = OUTPUT_FIELDS[1:]
_FLOATS = frozenset(f for f in _CELLS if Candle.__annotations__[f] == "float")
CSV_HEADER = ",".join(OUTPUT_FIELDS) + "\r\n"


def _row_format(closed: bool) -> str:
    """The ``%`` format of one CSV row, ``closed`` written in (so a row is one C-level ``%``, no per-cell Python)."""
    flag = "true" if closed else "false"
    cells = [flag if f == "closed" else "%r" if f in _FLOATS else "%s" for f in _CELLS]
    return ",".join(["candle", *cells]) + "\r\n"


_CSV_ROW = {closed: _row_format(closed) for closed in (True, False)}
_VALUES = operator.attrgetter(*(f for f in _CELLS if f != "closed"))
SPILL_BYTES = 8 << 20  # buffered text before streams are appended to their spill files


def csv_rows(candles: Iterable[Candle]) -> str:
    """CSV lines of candles (no header), byte for byte what ``csv.writer`` wrote with ``repr`` floats."""
    rows = _CSV_ROW
    return "".join([rows[c.closed] % _VALUES(c) for c in candles])


_JSON = msgspec.json.Encoder()


def jsonl_rows(candles: Iterable[Candle]) -> str:
    """JSON lines of candles, every wire field but ``emitted_at``."""
    out = []
    for c in candles:
        d = msgspec.to_builtins(c)
        d.pop("emitted_at", None)
        out.append(_JSON.encode(d).decode() + "\n")
    return "".join(out)


class CandleFile:
    """Takes candles stream by stream in time order (:meth:`add`), writes them grouped by stream (:meth:`finish`)."""

    def __init__(self, out: Path, *, spill_bytes: int = SPILL_BYTES) -> None:
        self.out = out
        self.jsonl = out.suffix == ".jsonl"
        self.spill_bytes = spill_bytes
        self.written = 0
        self._buffers: dict[tuple[str, str], list[str]] = {}
        self._buffered = 0
        self._spilled: set[tuple[str, str]] = set()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def add(self, candles: list[Candle]) -> None:
        """Candles in event order; within one stream in ``open_time`` order."""
        if not candles:
            return
        by_stream: dict[tuple[str, str], list[Candle]] = {}
        for c in candles:
            by_stream.setdefault((c.symbol, c.interval), []).append(c)
        fmt = jsonl_rows if self.jsonl else csv_rows
        for stream, part in by_stream.items():
            text = fmt(part)
            self._buffers.setdefault(stream, []).append(text)
            self._buffered += len(text)
        self.written += len(candles)
        if self._buffered >= self.spill_bytes:
            self._spill()

    def _spill_path(self, stream: tuple[str, str]) -> Path:
        if self._tmp is None:  # next to the output: a large spill goes where the output will fit
            self._tmp = tempfile.TemporaryDirectory(prefix=".candles-", dir=self.out.parent)
        return Path(self._tmp.name) / f"{stream[0]}.{stream[1]}"

    def _spill(self) -> None:
        for stream, texts in self._buffers.items():
            with self._spill_path(stream).open("a", newline="") as f:
                f.writelines(texts)
            self._spilled.add(stream)
        self._buffers.clear()
        self._buffered = 0

    def finish(self) -> None:
        """Write the file: a header row (CSV), then every stream in (symbol, interval duration) order.

        It is written under a temporary name next to ``out`` and renamed when complete, so an interrupted
        run leaves the file that was there before (or none), never a truncated one.
        """
        streams = sorted(set(self._buffers) | self._spilled, key=lambda s: (s[0], INTERVALS_MS[s[1]]))
        part_path = self.out.with_name(f".{self.out.name}.part")
        try:
            with part_path.open("w", newline="") as f:
                if not self.jsonl:
                    f.write(CSV_HEADER)
                for stream in streams:
                    if stream in self._spilled:
                        with self._spill_path(stream).open(newline="") as part:
                            _copy(part, f)
                    f.writelines(self._buffers.get(stream, ()))
            os.replace(part_path, self.out)
        finally:
            part_path.unlink(missing_ok=True)
            self.close()

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _copy(src: IO[str], dst: IO[str]) -> None:
    shutil.copyfileobj(src, dst, 1 << 20)
