"""The recent candles of one stream, shared by every session of the process.

A book starts from a REST snapshot and takes live updates on top; a snapshot
fetched while updates keep arriving is merged with what arrived meanwhile.
"""

from __future__ import annotations

import bisect
import time

from backend.models import Candle

Stream = tuple[str, str]  # (symbol, interval)

DEFAULT_BOOK_LIMIT = 1000


class StreamBook:
    """The recent candles of one stream, oldest first.

    Not thread-safe by itself: the feed guards it with its lock.
    """

    def __init__(self, stream: Stream, limit: int = DEFAULT_BOOK_LIMIT) -> None:
        self.stream = stream
        self.limit = limit
        self.rows: list[Candle] = []
        self._open_times: list[int] = []
        self.version = 0
        self.loaded = False  # a REST snapshot has been merged at least once
        self.synced = False  # no known hole since the last snapshot
        self.error: str | None = None
        self.loaded_at: float | None = None
        self._pending: list[Candle] | None = None  # live candles seen while a snapshot is in flight

    @property
    def last(self) -> Candle | None:
        return self.rows[-1] if self.rows else None

    def apply(self, c: Candle) -> bool:
        """Merge one candle (newer seq wins for the same open_time); True when the book changed."""
        if self._pending is not None:
            self._pending.append(c)
        rows, times = self.rows, self._open_times
        if not rows or c.open_time > times[-1]:
            rows.append(c)
            times.append(c.open_time)
            if len(rows) > self.limit + 64:
                del rows[: len(rows) - self.limit]
                del times[: len(times) - self.limit]
        else:
            i = bisect.bisect_left(times, c.open_time)
            if i < len(times) and times[i] == c.open_time:
                if c.seq < rows[i].seq or c == rows[i]:
                    return False
                rows[i] = c
            elif i == 0 and len(rows) >= self.limit:
                return False  # older than what the book keeps
            else:
                rows.insert(i, c)
                times.insert(i, c.open_time)
        self.version += 1
        return True

    def begin_snapshot(self) -> None:
        self._pending = []

    def load_snapshot(self, candles: list[Candle]) -> None:
        """Replace the rows by a REST snapshot, then re-apply what arrived live meanwhile."""
        pending, self._pending = self._pending or [], None
        ordered = sorted(candles, key=lambda c: c.open_time)[-self.limit :]
        self.rows = ordered
        self._open_times = [c.open_time for c in ordered]
        for c in pending:
            self.apply(c)
        self.version += 1
        self.loaded = True
        self.synced = True
        self.error = None
        self.loaded_at = time.time()

    def merge_snapshot(self, candles: list[Candle]) -> None:
        """Fill a hole from the last few candles (a gap resync): merge them, keep the rest."""
        pending, self._pending = self._pending or [], None
        for c in sorted(candles, key=lambda c: c.open_time):
            self.apply(c)
        for c in pending:
            self.apply(c)
        self.version += 1
        self.synced = True
        self.error = None
        self.loaded_at = time.time()

    def fail_snapshot(self, message: str) -> None:
        self._pending = None
        self.error = message

    def tail(self, n: int | None = None, since_open_time: int | None = None) -> list[Candle]:
        if since_open_time is not None:
            return self.rows[bisect.bisect_left(self._open_times, since_open_time) :]
        return list(self.rows if n is None else self.rows[-n:])
