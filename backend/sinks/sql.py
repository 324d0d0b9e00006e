"""The SQL sink: closed candles into history on a background thread, through outages.

The hot path only appends to a buffer (and, with a :class:`~backend.sinks.spool.Spool`,
to a local file first, so that no exit loses a candle); a thread writes batches with
the idempotent upsert of :mod:`backend.store` (where the tables and queries live),
backing off while the database is down and keeping the candles meanwhile. What the
spool holds at start (left by a previous run) is written first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from backend.models import Candle
from backend.sinks.spool import Spool
from backend.store import upsert_candles

log = logging.getLogger(__name__)


class SqlSink:
    """Writes closed candles on a background thread, in batches, retrying with backoff.

    ``put`` never blocks and never touches the database. During an outage the
    candles wait in a bounded buffer (``capacity``: at 100 closed candles per
    second that is over an hour) and are written when the database returns.
    With a ``spool`` every closed candle is appended to it before it is queued,
    so one that is still pending when the process ends (or beyond ``capacity``)
    is written by the next start.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        spool: Spool | None = None,
        capacity: int = 500_000,
        batch: int = 5_000,
        interval_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.engine = engine
        self._buffer: deque[Candle] = deque()
        self.capacity = capacity
        self.batch = batch
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self.healthy = True
        self.last_error: str | None = None
        self.spool = spool
        self.spool_errors = 0
        self.restored = 0
        self._in_flight = 0
        self._spool_complete = True  # every candle of the spool is in the buffer (so it may be emptied)
        if spool is not None:
            left = [c for c in spool.read() if c.closed]
            self.restored = len(left)
            if left:
                log.info("%d closed candles left by the previous run (spool %s): writing them", len(left), spool.path)
                self.put(left, spooled=True)
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def put(self, candles: Iterable[Candle], *, spooled: bool = False) -> None:
        """Queue the closed ones of ``candles`` (spooled first); beyond ``capacity`` the oldest leave the
        buffer (and stay only in the spool, for the next start; without a spool they are lost)."""
        closed = [c for c in candles if c.closed]
        if not closed:
            return
        with self._lock:
            if self.spool is not None and not spooled:
                try:
                    self.spool.append(closed)
                except OSError as exc:
                    self.spool_errors += 1
                    if self.spool_errors == 1:
                        log.error(
                            "cannot append to the spool %s (%s): pending candles die with the process",
                            self.spool.path,
                            exc,
                        )
            buffer = self._buffer
            overflow = len(buffer) + len(closed) - self.capacity
            if overflow > 0:
                for _ in range(min(overflow, len(buffer))):
                    buffer.popleft()
                self.dropped += overflow
                self._spool_complete = False
                closed = closed[-self.capacity :]
            buffer.extend(closed)

    @property
    def pending(self) -> int:
        """Candles not yet written: queued, being written, and (beyond ``capacity``) only in the spool."""
        return len(self._buffer) + self._in_flight + (0 if self._spool_complete else self.dropped)

    def _take(self) -> list[Candle]:
        with self._lock:
            n = min(self.batch, len(self._buffer))
            self._in_flight = n
            return [self._buffer.popleft() for _ in range(n)]

    def _give_back(self, items: list[Candle]) -> None:
        with self._lock:
            self._buffer.extendleft(reversed(items))
            self._in_flight = 0

    def _written(self, n: int) -> None:
        """A batch is in the database: when nothing else is pending, the spool is emptied."""
        with self._lock:
            self._in_flight = 0
            self.written += n
            if self.spool is not None and not self._buffer and self._spool_complete:
                try:
                    self.spool.clear()
                except OSError as exc:
                    self.spool_errors += 1
                    log.warning(
                        "cannot empty the spool %s (%s); the next start rewrites its candles", self.spool.path, exc
                    )

    def _run(self) -> None:
        backoff = 0.0
        while True:
            self._wake.wait(backoff or self.interval_s)
            self._wake.clear()
            stopping = self._stop.is_set()
            while self._buffer:
                items = self._take()
                try:
                    upsert_candles(self.engine, items)
                except SQLAlchemyError as exc:
                    self._give_back(items)
                    self.errors += 1
                    self.last_error = str(exc).splitlines()[0][:200]
                    if self.healthy:
                        log.warning("database write failed (%s); %d candles kept", self.last_error, self.pending)
                    self.healthy = False
                    backoff = min(self.max_backoff_s, max(0.2, backoff * 2))
                    break
                else:
                    if not self.healthy:
                        log.info("database is back")
                    self.healthy = True
                    self.last_error = None
                    backoff = 0.0
                    self._written(len(items))
            if stopping and (not self._buffer or not self.healthy):
                return

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the buffer is written (or ``timeout``); True when it is empty."""
        deadline = time.monotonic() + timeout
        while (self._buffer or self._in_flight) and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)
        return not (self._buffer or self._in_flight)

    def close(self, timeout: float = 10.0) -> int:
        """Write what is pending within about ``timeout`` seconds; returns how many candles are still
        pending (kept in the spool for the next start, when there is one)."""
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))  # a write hung in the database is left behind
        with self._lock:
            pending = self.pending
            if self.spool is not None:
                self.spool.close(remove=pending == 0)
        if pending:
            where = f"kept in {self.spool.path}, written on the next start" if self.spool else "lost (no spool)"
            log.error("%d closed candles not written to the database after %.1f s: %s", pending, timeout, where)
        return pending

    def stats(self) -> dict[str, Any]:
        """Database health and backlog for the System page: ``db_ok``, ``db_pending``, …"""
        return {
            "db_ok": self.healthy,
            "db_pending": self.pending,
            "db_written": self.written,
            "db_dropped": self.dropped,
            "db_error": self.last_error,
            "db_spooled_at_start": self.restored,
            "db_spool_errors": self.spool_errors,
        }
