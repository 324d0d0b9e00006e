"""The SQL sink: closed candles into history on a background thread, through outages.

The hot path only appends to a buffer; a thread writes batches with the
idempotent upsert of :mod:`backend.store` (where the tables and queries live),
backing off while the database is down and keeping the candles meanwhile.
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
from backend.store import upsert_candles

log = logging.getLogger(__name__)


class SqlSink:
    """Writes closed candles on a background thread, in batches, retrying with backoff.

    ``put`` never blocks and never touches the database. During an outage the
    candles wait in a bounded buffer (``capacity``: at 100 closed candles per
    second that is over an hour) and are written when the database returns.
    """

    def __init__(
        self,
        engine: Engine,
        *,
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
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def put(self, candles: Iterable[Candle]) -> None:
        """Queue the closed ones of ``candles``; beyond ``capacity`` the oldest are dropped."""
        with self._lock:
            for c in candles:
                if c.closed:
                    if len(self._buffer) >= self.capacity:
                        self._buffer.popleft()
                        self.dropped += 1
                    self._buffer.append(c)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def _take(self) -> list[Candle]:
        with self._lock:
            n = min(self.batch, len(self._buffer))
            return [self._buffer.popleft() for _ in range(n)]

    def _give_back(self, items: list[Candle]) -> None:
        with self._lock:
            self._buffer.extendleft(reversed(items))

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
                    self.written += len(items)
            if stopping and (not self._buffer or not self.healthy):
                return

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the buffer is written (or ``timeout``); True when it is empty."""
        deadline = time.monotonic() + timeout
        while self._buffer and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)
        return not self._buffer

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        """Database health and backlog for the System page: ``db_ok``, ``db_pending``, …"""
        return {
            "db_ok": self.healthy,
            "db_pending": self.pending,
            "db_written": self.written,
            "db_dropped": self.dropped,
            "db_error": self.last_error,
        }
