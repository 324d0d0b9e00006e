"""The REST worker thread: what the pages need from the relay's REST API, fetched off their reruns.

Snapshots of new or resynchronised streams (as the listener marks them
due), the symbol list (at each connection and every minute), and, while a
session shows the system page, the relay's stats once a second. A snapshot
the relay answers with an error (its Redis down: 503) is asked again with
backoff; one the relay could not be reached for waits for the reconnect,
which asks for every stream's.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from backend.backoff import Backoff
from backend.models import now_ms
from services.client import RelayClient, RelayError
from services.feed.book import Stream
from services.feed.state import FeedState


@dataclass
class StatsSample:
    """The relay's ``/api/v1/stats`` and ``/ws/stats`` at one moment (or why they could not be read)."""

    at_ms: int
    stats: dict[str, Any] | None
    ws_stats: dict[str, Any] | None
    error: str | None = None


class RestWorker:
    """Fetches snapshots, symbols and stats for the feed, from :meth:`run` on a daemon thread."""

    def __init__(self, shared: FeedState, client: RelayClient, *, stats_every_s: float = 1.0) -> None:
        self.client = client
        self.stats_every_s = stats_every_s
        self._lock, self._wake, self._stop = shared.lock, shared.wake, shared.stop
        self._sessions, self._streams, self._conn = shared.sessions, shared.streams, shared.connection
        self.symbols: list[str] = []
        self.intervals: list[str] = []
        self.symbols_error: str | None = None
        self.stats: StatsSample | None = None
        self.stats_history: deque[StatsSample] = deque(maxlen=300)
        self.snapshots = 0
        self._symbols_at = 0.0
        # per stream whose snapshot the relay refused: when to ask again (monotonic) and for how many candles
        self._retries: dict[Stream, tuple[float, int]] = {}
        self._backoffs: dict[Stream, Backoff] = {}  # until its next snapshot succeeds

    def refresh_symbols(self) -> None:
        """Fetch the symbol list at the next turn (lock held)."""
        self._symbols_at = 0.0

    def wait_symbols(self, timeout: float) -> list[str]:
        """The relay's symbols, waiting up to ``timeout`` for the first list (not while the relay is down)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self.symbols and self._conn.state not in {"down", "stopped"}:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(min(left, 0.25))
            return list(self.symbols)

    def run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                live = self._conn.state == "live"
                retry_in = self._queue_retries(time.monotonic()) if live else 1.0
                due = self._streams.take_due() if live else {}
                stats_wanted = self._sessions.wants_stats()
                symbols_due = live and time.time() - self._symbols_at > 60
                if not due and not symbols_due:
                    last = self.stats.at_ms / 1000 if self.stats else 0.0
                    stats_due = stats_wanted and time.time() - last >= self.stats_every_s
                    if not stats_due:
                        self._wake.wait(min(self.stats_every_s / 4 if stats_wanted else 1.0, retry_in))
                        continue
            if symbols_due:
                self._fetch_symbols()
            for s, n in sorted(due.items()):
                self._fetch_snapshot(s, n)
            if stats_wanted:
                last = self.stats.at_ms / 1000 if self.stats else 0.0
                if time.time() - last >= self.stats_every_s * 0.95:
                    self._fetch_stats()

    def _fetch_symbols(self) -> None:
        try:
            symbols, intervals = self.client.symbols()
        except RelayError as exc:
            with self._lock:
                self.symbols_error = str(exc)
                self._symbols_at = time.time() - 50  # retry in about ten seconds
            return
        with self._lock:
            self.symbols, self.intervals = symbols, intervals
            self.symbols_error = None
            self._symbols_at = time.time()
            self._wake.notify_all()

    def _queue_retries(self, now: float) -> float:
        """Mark due the refused snapshots whose time has come (lock held); seconds until the next one."""
        for s in [s for s, (at, _) in self._retries.items() if at <= now or s not in self._streams.books]:
            _, limit = self._retries.pop(s)
            if s in self._streams.books:
                self._streams.due({s: limit}, None)
            else:  # nobody follows it any more
                self._backoffs.pop(s, None)
        return min((at - now for at, _ in self._retries.values()), default=1.0)

    def _fetch_snapshot(self, s: Stream, limit: int) -> None:
        with self._lock:
            book = self._streams.books.get(s)
            if book is None:
                return
            patch = book.loaded and limit < self._streams.book_limit
            book.begin_snapshot()
        try:
            candles = self.client.candles(s[0], s[1], limit=limit)
        except RelayError as exc:
            with self._lock:
                if self._streams.books.get(s) is book:
                    book.fail_snapshot(str(exc))
                    if exc.status is not None:  # the relay answered: ask again later (unreachable: the reconnect asks)
                        backoff = self._backoffs.setdefault(s, Backoff(initial=1.0, maximum=30.0))
                        self._retries[s] = (time.monotonic() + backoff.next_delay(), limit)
            return
        with self._lock:
            self._backoffs.pop(s, None)
            if self._streams.books.get(s) is not book:
                return
            if patch:
                book.merge_snapshot(candles)
            else:
                book.load_snapshot(candles)
            self.snapshots += 1
            if book.last is not None:
                self._streams.seq[s] = max(self._streams.seq.get(s, -1), book.last.seq)
            self._sessions.mark_resync(s)  # redraw from the fresh snapshot
            self._wake.notify_all()

    def _fetch_stats(self) -> None:
        error = None
        stats = ws_stats = None
        try:
            stats = self.client.stats()
        except RelayError as exc:
            error = str(exc)
        try:
            ws_stats = self.client.ws_stats()
        except RelayError as exc:
            error = error or str(exc)
        sample = StatsSample(now_ms(), stats, ws_stats, error)
        with self._lock:
            self.stats = sample
            self.stats_history.append(sample)
            self._wake.notify_all()
