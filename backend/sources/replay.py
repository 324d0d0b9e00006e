"""Replay a recorded trade file through the pipeline, at its recorded pace or faster.

A replay is not live (``live = False``): candles close on event time only, so
a replay at any speed produces the same candles as the offline aggregator.
Pacing uses each trade's replay clock: the trade time, or for a WebSocket
capture the time the message was received, so real arrival bursts survive.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from backend.models import Rejects, TradeBatch, normalize_symbol
from backend.sources import SPEC_HELP, SourceOptions
from backend.sources.formats import DEFAULT_CHUNK, ReadLimits, check_file, read_timed
from backend.sources.formats.files import DEFAULT_LIMITS

IDLE_S = 0.05  # while waiting for the next trade, an empty batch at least this often


class ReplaySource:
    """Trades from a file; ``speed`` 1 = recorded timing, 2 = twice as fast, 0 = as fast as possible.

    ``symbols`` keeps only those symbols (None: every symbol in the file); the
    trades it drops are counted in ``skipped`` under ``other_symbol``.
    """

    live = False

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float = 1.0,
        fmt: str | None = None,
        symbols: Sequence[str] | None = None,
        symbol: str | None = None,
        chunk: int = DEFAULT_CHUNK,
        limits: ReadLimits = DEFAULT_LIMITS,
    ) -> None:
        if not (math.isfinite(speed) and speed >= 0):
            raise ValueError(f"replay speed must be 0 (as fast as possible) or a positive factor, got {speed!r}")
        self.path = Path(path)
        self.limits = limits
        self.fmt, self.symbol = check_file(self.path, fmt, symbol, limits)  # fail now, with one line, not mid-replay
        self.speed = speed
        self.chunk = chunk
        self.symbols = None if symbols is None else {s for s in map(normalize_symbol, symbols) if s}
        self.rejects = Rejects()
        self.skipped = Rejects()

    def batches(self, stop: threading.Event) -> Iterator[TradeBatch]:
        """Validated batches in file order, paced by the replay clock; ends at the end of the file or on ``stop``."""
        timed = read_timed(
            self.path,
            self.fmt,
            rejects=self.rejects,
            skipped=self.skipped,
            chunk=self.chunk,
            symbol=self.symbol,
            limits=self.limits,
        )
        pacer = _Pacer(self.speed) if self.speed > 0 else None
        for batch, clock in timed:
            if stop.is_set():
                return
            batch, clock = self._filter(batch, clock)
            if pacer is None:
                yield batch
                continue
            for part in pacer.pace(batch, clock, stop):
                yield part
                if stop.is_set():
                    return

    def _filter(self, batch: TradeBatch, clock: np.ndarray) -> tuple[TradeBatch, np.ndarray]:
        if self.symbols is None or len(batch) == 0:
            return batch, clock
        wanted = np.array([s in self.symbols for s in batch.symbols], dtype=bool)
        keep = wanted[batch.sym]
        dropped = len(batch) - int(keep.sum())
        if dropped == 0:
            return batch, clock
        self.skipped.add("other_symbol", dropped)
        return batch.take(keep), clock[keep]


def open_spec(arg: str, options: SourceOptions) -> ReplaySource:
    """``replay:PATH``: the file at its recorded pace times ``speed``, keeping ``symbols`` when given."""
    if not arg.strip():
        raise ValueError(f"replay needs a file: {SPEC_HELP}")
    return ReplaySource(
        arg.strip(), speed=options.speed, fmt=options.fmt, symbols=options.symbols, limits=options.limits
    )


class _Pacer:
    """Maps the replay clock onto the wall clock: ``wall = start + (clock - first) / speed``."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.origin: tuple[float, int] | None = None  # (monotonic s, clock ms) of the first trade
        self.high = np.iinfo(np.int64).min  # clocks only move forward, so a stray early row cannot stall
        self.last_yield = time.monotonic()

    def pace(self, batch: TradeBatch, clock: np.ndarray, stop: threading.Event) -> Iterator[TradeBatch]:
        """Slices of ``batch`` as they fall due, and empty batches while waiting (at most ``IDLE_S`` apart)."""
        if len(batch) == 0:
            return
        clock = np.maximum.accumulate(np.maximum(clock, self.high))
        self.high = int(clock[-1])
        if self.origin is None:
            self.origin = (time.monotonic(), int(clock[0]))
        start, first = self.origin
        due = start + (clock - first) / 1000 / self.speed
        i, n = 0, len(batch)
        while i < n:
            now = time.monotonic()
            j = int(np.searchsorted(due, now, side="right"))
            if j > i:
                yield batch.take(slice(i, j))
                self.last_yield, i = now, j
                continue
            if stop.wait(min(due[i] - now, IDLE_S)):
                return
            if time.monotonic() - self.last_yield >= IDLE_S:
                self.last_yield = time.monotonic()
                yield TradeBatch.empty()
