"""A session's queue of candle updates: bounded, coalescing, released with the session.

The listener puts, the session's rerun drains: between two reruns a stream
holds at most the candles that changed, and a session may miss updates,
never silently (what it dropped is marked for a fresh snapshot).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from backend.models import AlertEvent, Candle
from services.feed.book import Stream

log = logging.getLogger(__name__)

QueueKey = tuple[str, str, int]  # (symbol, interval, open_time)

DEFAULT_QUEUE_SIZE = 2000
MAX_ALERTS = 20  # alerts a session keeps between two reruns (each becomes a toast)


@dataclass
class Drained:
    """What a session takes from its queue in one rerun."""

    candles: list[Candle]
    resync: frozenset[Stream]
    reconnected: bool = False
    dropped: int = 0
    alerts: list[AlertEvent] = field(default_factory=list)

    @property
    def changed(self) -> set[Stream]:
        return {c.stream for c in self.candles} | set(self.resync)

    def latest(self) -> dict[Stream, Candle]:
        """The newest candle per stream among the drained ones."""
        out: dict[Stream, Candle] = {}
        for c in self.candles:
            prev = out.get(c.stream)
            if prev is None or (c.open_time, c.seq) >= (prev.open_time, prev.seq):
                out[c.stream] = c
        return out


class SessionQueue:
    """A session's bounded queue of candle updates, coalesced by (symbol, interval, open_time).

    A newer update of a candle replaces the queued one in place, so between
    two reruns a stream holds at most the candles that changed (normally
    the one forming, plus the one that just closed). When the queue is full
    the oldest entry is dropped and its stream is marked for a fresh
    snapshot: a session may miss updates, never silently. Thread-safe; the
    listener puts, the session's rerun drains.
    """

    def __init__(self, session_id: str, maxlen: int = DEFAULT_QUEUE_SIZE) -> None:
        if maxlen < 1:
            raise ValueError("a session queue holds at least one candle")
        self.session_id = session_id
        self.maxlen = maxlen
        self.created_at = time.time()
        self.streams: frozenset[Stream] = frozenset()
        self.wants_stats = False
        self.page = ""
        self._lock = threading.Lock()
        self._items: dict[QueueKey, Candle] = {}
        self._alerts: list[AlertEvent] = []
        self._resync: set[Stream] = set()
        self._reconnected = False
        self._closed = False
        self._on_close: list[Callable[[SessionQueue], None]] = []
        self.puts = 0
        self.coalesced = 0
        self.dropped = 0
        self._dropped_since_drain = 0
        self.resyncs = 0
        self.drains = 0
        self.last_drain_at: float | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, candle: Candle) -> None:
        self.put_many((candle,))

    def put_many(self, candles: Iterable[Candle]) -> None:
        with self._lock:
            if self._closed:
                return
            for c in candles:
                key = (c.symbol, c.interval, c.open_time)
                self.puts += 1
                old = self._items.get(key)
                if old is not None:
                    self.coalesced += 1
                    if c.seq >= old.seq:
                        self._items[key] = c  # keeps its place: updates of one candle stay in order
                    continue
                if len(self._items) >= self.maxlen:
                    oldest = next(iter(self._items))
                    del self._items[oldest]
                    self.dropped += 1
                    self._dropped_since_drain += 1
                    self._resync.add((oldest[0], oldest[1]))
                self._items[key] = c

    def put_alerts(self, alerts: Iterable[AlertEvent]) -> None:
        """Fired alerts for this session's toasts; past ``MAX_ALERTS`` between reruns the oldest go."""
        with self._lock:
            if not self._closed:
                self._alerts = [*self._alerts, *alerts][-MAX_ALERTS:]

    def mark_resync(self, streams: Iterable[Stream] | None = None, *, reconnected: bool = False) -> None:
        """Ask for a fresh snapshot of ``streams`` (all the session's streams when None)."""
        with self._lock:
            if self._closed:
                return
            marked = set(self.streams if streams is None else streams)
            if marked or reconnected:
                self.resyncs += 1
            self._resync |= marked
            self._reconnected = self._reconnected or reconnected

    def drain(self) -> Drained:
        with self._lock:
            out = Drained(list(self._items.values()), frozenset(self._resync), self._reconnected)
            out.dropped = self._dropped_since_drain
            out.alerts, self._alerts = self._alerts, []
            self._items = {}
            self._resync = set()
            self._reconnected = False
            self._dropped_since_drain = 0
            self.drains += 1
            self.last_drain_at = time.time()
            return out

    def on_close(self, callback: Callable[[SessionQueue], None]) -> None:
        self._on_close.append(callback)

    def close(self) -> None:
        """Release the queue (idempotent): it stops accepting candles and leaves its feed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._items = {}
            self._resync = set()
            callbacks, self._on_close = self._on_close, []
        for cb in callbacks:
            try:
                cb(self)
            except Exception:  # a release must never raise into Streamlit's cache machinery
                log.exception("releasing session queue %s", self.session_id)

    def info(self) -> dict[str, Any]:
        return {
            "session": self.session_id[:8],
            "page": self.page,
            "streams": len(self.streams),
            "depth": len(self._items),
            "puts": self.puts,
            "coalesced": self.coalesced,
            "dropped": self.dropped,
            "resyncs": self.resyncs,
            "drains": self.drains,
            "idle_s": round(time.time() - self.last_drain_at, 1) if self.last_drain_at else None,
        }
