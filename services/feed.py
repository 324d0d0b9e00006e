"""The live feed of a Streamlit server process: one WebSocket listener, per-session queues.

One :class:`Feed` per server process (the app keeps it in ``st.cache_resource``):

- a listener thread holds a websocket-client connection to the relay's
  ``/ws``, reconnecting with exponential backoff and full jitter, and
  subscribes to exactly the streams that live sessions want;
- every received candle goes into a process-wide :class:`StreamBook` per
  stream (snapshot from REST + live updates: what figures are built from,
  once per update for all sessions) and into the :class:`SessionQueue` of
  each session that wants that stream;
- a worker thread does the REST work off the pages' reruns: snapshots of
  new or resynchronised streams, the symbol list, and (while a session
  shows the system page) the relay's stats once a second.

A ``seq`` gap, a reconnect or the relay's ``resync`` message marks the
stream's book for a fresh snapshot and the sessions that watch it; until
the snapshot is merged the book reports ``synced = False`` and figures keep
the last complete picture, so a chart never shows a hole.

Nothing here calls ``st.*``.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import websocket

from backend.models import Candle, decode_batch, now_ms
from services.api import RelayClient, RelayError, ws_url

log = logging.getLogger(__name__)

Stream = tuple[str, str]  # (symbol, interval)
QueueKey = tuple[str, str, int]  # (symbol, interval, open_time)

DEFAULT_QUEUE_SIZE = 2000
DEFAULT_BOOK_LIMIT = 1000


# ---------------------------------------------------------------- session queue


@dataclass
class Drained:
    """What a session takes from its queue in one rerun."""

    candles: list[Candle]
    resync: frozenset[Stream]
    reconnected: bool = False
    dropped: int = 0

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


# ---------------------------------------------------------------- stream book


class StreamBook:
    """The recent candles of one stream, shared by every session of the process.

    Not thread-safe by itself: the :class:`Feed` guards it with its lock.
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


# ---------------------------------------------------------------- the listener


@dataclass
class FeedStatus:
    """What a page shows about the connection to the relay."""

    state: str  # "connecting" | "live" | "down" | "stopped"
    relay_url: str
    error: str | None
    connected_since: float | None
    down_since: float | None
    reconnects: int
    attempts: int
    frames: int
    candles: int
    gaps: int
    resyncs: int
    last_message_at: float | None
    latency_ms: dict[str, float | None]
    streams: int
    sessions: int
    next_attempt_at: float | None = None

    @property
    def live(self) -> bool:
        return self.state == "live"


@dataclass
class StatsSample:
    at_ms: int
    stats: dict[str, Any] | None
    ws_stats: dict[str, Any] | None
    error: str | None = None


@dataclass
class _Backoff:
    initial: float = 0.5
    maximum: float = 10.0
    attempt: int = 0

    def next_delay(self) -> float:
        """Exponential backoff with full jitter (never below a tenth of a second)."""
        cap = min(self.maximum, self.initial * (2**self.attempt))
        self.attempt += 1
        return max(0.1, random.uniform(cap / 2, cap))

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class _Latency:
    samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=4096))
    _cached: tuple[float, dict[str, float | None]] | None = None

    def add(self, at: float, ms: float) -> None:
        self.samples.append((at, ms))

    def summary(self, window_s: float = 10.0, max_age_s: float = 0.5) -> dict[str, float | None]:
        """p50 / p99 over the last ``window_s``; recomputed at most every ``max_age_s`` (pages ask every rerun)."""
        now = time.time()
        if self._cached is not None and now - self._cached[0] < max_age_s:
            return self._cached[1]
        self._cached = (now, self._summary(now - window_s))
        return self._cached[1]

    def _summary(self, cutoff: float) -> dict[str, float | None]:
        vals = sorted(ms for at, ms in self.samples if at >= cutoff)
        if not vals:
            return {"p50": None, "p99": None, "n": 0}
        return {
            "p50": vals[len(vals) // 2],
            "p99": vals[min(len(vals) - 1, int(len(vals) * 0.99))],
            "n": float(len(vals)),
        }


class Feed:
    """One listener per process; see the module docstring."""

    def __init__(
        self,
        relay_url: str,
        token: str | None = None,
        *,
        book_limit: int = DEFAULT_BOOK_LIMIT,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        stats_every_s: float = 1.0,
        recv_timeout_s: float = 5.0,
        client: RelayClient | None = None,
    ) -> None:
        self.relay_url = relay_url.rstrip("/")
        self.token = token
        self.book_limit = book_limit
        self.queue_size = queue_size
        self.stats_every_s = stats_every_s
        self.recv_timeout_s = recv_timeout_s
        self.client = client or RelayClient(self.relay_url, token)
        self._backoff = _Backoff(backoff_initial, backoff_max)
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self._queues: dict[int, SessionQueue] = {}
        self._watchers: dict[Stream, set[SessionQueue]] = {}
        self._pinned: dict[Stream, float] = {}  # streams kept without a session (e.g. page about to draw)
        self._subscribed: set[Stream] = set()
        self._books: dict[Stream, StreamBook] = {}
        self._seq: dict[Stream, int] = {}
        self._snapshot_due: dict[Stream, int] = {}  # stream → how many recent candles to fetch
        self._threads: list[threading.Thread] = []
        self.symbols: list[str] = []
        self.intervals: list[str] = []
        self.symbols_error: str | None = None
        self.stats: StatsSample | None = None
        self.stats_history: deque[StatsSample] = deque(maxlen=300)
        self._state = "connecting"
        self._error: str | None = None
        self._connected_since: float | None = None
        self._down_since: float | None = None
        self._next_attempt_at: float | None = None
        self._ever_connected = False
        self.reconnects = 0
        self.attempts = 0
        self.frames = 0
        self.candles_in = 0
        self.gaps = 0
        self.resyncs = 0
        self.snapshots = 0
        self.control: deque[dict[str, Any]] = deque(maxlen=50)
        self._last_message_at: float | None = None
        self._latency = _Latency()
        self._symbols_at = 0.0
        self.generation = 0  # bumps on every (re)connect: pages can tell a recovery

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Feed:
        if self._threads:
            return self
        for name, target in (("listener", self._listen), ("worker", self._work)):
            t = threading.Thread(target=target, name=f"candles-feed-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            ws = self._ws
            self._state = "stopped"
            self._wake.notify_all()
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.close(timeout=0.5)
        for t in self._threads:
            t.join(timeout)
        self.client.close()

    # ------------------------------------------------------------ sessions

    def register(self, session_id: str) -> SessionQueue:
        q = SessionQueue(session_id, self.queue_size)
        q.on_close(self.release)
        with self._lock:
            self._queues[id(q)] = q
        return q

    def release(self, q: SessionQueue) -> None:
        """Forget a session (idempotent); streams nobody wants any more are unsubscribed."""
        with self._lock:
            if self._queues.pop(id(q), None) is None:
                return
            for s in q.streams:
                watchers = self._watchers.get(s)
                if watchers is not None:
                    watchers.discard(q)
            q.streams = frozenset()
            q.wants_stats = False
            self._sync_subscriptions()
        q.close()

    def want(self, q: SessionQueue, streams: Iterable[Stream], *, stats: bool = False, page: str = "") -> None:
        """Set what a session needs; the listener (un)subscribes to match all sessions together."""
        new = frozenset(streams)
        with self._lock:
            if q.closed or id(q) not in self._queues:
                return
            q.page = page or q.page
            q.wants_stats = stats
            if new != q.streams:
                for s in q.streams - new:
                    self._watchers.get(s, set()).discard(q)
                for s in new - q.streams:
                    self._watchers.setdefault(s, set()).add(q)
                q.streams = new
                self._sync_subscriptions()
            if stats:
                self._wake.notify_all()

    def sessions(self) -> list[SessionQueue]:
        with self._lock:
            return list(self._queues.values())

    # ------------------------------------------------------------ reads for pages (no I/O)

    def book(self, stream: Stream) -> StreamBook | None:
        return self._books.get(stream)

    def read(self, stream: Stream, fn: Callable[[StreamBook], Any]) -> Any:
        """Run ``fn`` on a stream's book under the feed's lock (None when there is no book)."""
        with self._lock:
            b = self._books.get(stream)
            return None if b is None else fn(b)

    def wait_loaded(self, streams: Iterable[Stream], timeout: float) -> bool:
        """Block until every stream's book has a snapshot (or the timeout); for a page's first draw."""
        wanted = list(streams)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                if all((b := self._books.get(s)) is not None and b.loaded for s in wanted):
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or self._state in {"down", "stopped"}:
                    return False
                self._wake.wait(min(left, 0.25))

    def wait_symbols(self, timeout: float) -> list[str]:
        """The relay's symbols, waiting up to ``timeout`` for the first list (not while the relay is down)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self.symbols and self._state not in {"down", "stopped"}:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(min(left, 0.25))
            return list(self.symbols)

    def status(self) -> FeedStatus:
        with self._lock:
            return FeedStatus(
                state=self._state,
                relay_url=self.relay_url,
                error=self._error,
                connected_since=self._connected_since,
                down_since=self._down_since,
                reconnects=self.reconnects,
                attempts=self.attempts,
                frames=self.frames,
                candles=self.candles_in,
                gaps=self.gaps,
                resyncs=self.resyncs,
                last_message_at=self._last_message_at,
                latency_ms=self._latency.summary(),
                streams=len(self._subscribed),
                sessions=len(self._queues),
                next_attempt_at=self._next_attempt_at,
            )

    def subscribed(self) -> set[Stream]:
        with self._lock:
            return set(self._subscribed)

    # ------------------------------------------------------------ subscriptions

    def _desired(self) -> set[Stream]:
        return {s for s, qs in self._watchers.items() if qs}

    def _sync_subscriptions(self) -> None:
        """Bring the relay subscription and the books in line with what sessions want (lock held)."""
        desired = self._desired()
        added = desired - self._subscribed
        removed = self._subscribed - desired
        for s in set(self._books) - desired:
            self._books.pop(s, None)
            self._seq.pop(s, None)
            self._snapshot_due.pop(s, None)
        for s in added:
            self._books.setdefault(s, StreamBook(s, self.book_limit))
        for s in list(self._watchers):
            if not self._watchers[s]:
                del self._watchers[s]
        ws = self._ws
        if ws is None:
            self._subscribed -= removed  # the next connection subscribes afresh
            return
        try:
            self._send_ops(ws, "unsubscribe", removed)
            self._send_ops(ws, "subscribe", added)
        except Exception as exc:  # the listener notices the dead socket and reconnects
            log.info("subscription update failed: %s", exc)
            return
        self._subscribed = (self._subscribed - removed) | added
        if added:
            self._due(added, self.book_limit)

    @staticmethod
    def _send_ops(ws: websocket.WebSocket, op: str, streams: set[Stream]) -> None:
        by_interval: dict[str, list[str]] = {}
        for sym, interval in sorted(streams):
            by_interval.setdefault(interval, []).append(sym)
        for interval, symbols in by_interval.items():
            ws.send(json.dumps({"op": op, "symbols": symbols, "intervals": [interval]}))

    # ------------------------------------------------------------ listener thread

    def _listen(self) -> None:
        url = ws_url(self.relay_url, self.token)
        while not self._stop.is_set():
            with self._lock:
                self.attempts += 1
            try:
                ws = websocket.create_connection(url, timeout=3.0, enable_multithread=True)
            except Exception as exc:
                self._went_down(_describe(exc, self.relay_url))
                continue
            self._on_connect(ws)
            try:
                self._receive(ws)
            finally:
                with contextlib.suppress(Exception):
                    ws.close(timeout=0.2)
                with self._lock:
                    self._ws = None
                    self._subscribed = set()
            if not self._stop.is_set():
                self._went_down(self._error or "the relay closed the connection")

    def _went_down(self, reason: str) -> None:
        delay = self._backoff.next_delay()
        with self._lock:
            if self._stop.is_set():
                return
            if self._down_since is None:
                self._down_since = time.time()
            self._state = "down"
            self._error = reason
            self._connected_since = None
            self._next_attempt_at = time.time() + delay
            for b in self._books.values():
                b.synced = False
            self._wake.notify_all()
        log.info("relay unreachable (%s); retrying in %.1f s", reason, delay)
        self._stop.wait(delay)

    def _on_connect(self, ws: websocket.WebSocket) -> None:
        ws.settimeout(self.recv_timeout_s)
        with self._lock:
            reconnect = self._ever_connected
            self._ws = ws
            self._state = "live"
            self._error = None
            self._connected_since = time.time()
            self._down_since = None
            self._next_attempt_at = None
            self._ever_connected = True
            self.generation += 1
            self._subscribed = set()
            self._seq.clear()
            if reconnect:
                self.reconnects += 1
                for q in self._queues.values():
                    q.mark_resync(reconnected=True)
            for b in self._books.values():
                b.synced = False
            self._sync_subscriptions()
            self._due(set(self._books), self.book_limit)  # an outage can be long: full snapshots
            self._symbols_at = 0.0
            self._wake.notify_all()
        self._backoff.reset()
        log.info("connected to the relay at %s%s", self.relay_url, " (reconnected)" if reconnect else "")

    def _receive(self, ws: websocket.WebSocket) -> None:
        """Read frames until the connection ends; a quiet relay is pinged, a silent one is left."""
        idle = 0
        while not self._stop.is_set():
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                idle += 1
                if idle >= 3:  # no frame, not even a pong, for three timeouts
                    self._error = "the relay stopped answering"
                    return
                try:
                    ws.ping()
                except Exception:
                    return
                continue
            except websocket.WebSocketConnectionClosedException:
                self._error = "connection lost"
                return
            except (websocket.WebSocketException, OSError) as exc:
                if not self._stop.is_set():
                    self._error = f"connection lost: {_describe(exc, self.relay_url)}"
                return
            idle = 0
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self._error = "the relay closed the connection"
                return
            if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY) or not data:
                continue  # ping / pong
            try:
                self.handle_frame(data)
            except Exception:
                log.exception("could not handle a frame from the relay")

    def handle_frame(self, data: str | bytes) -> None:
        """One WebSocket message: a JSON array of candles, or a control object."""
        raw = data.encode() if isinstance(data, str) else data
        stripped = raw.lstrip()
        with self._lock:
            self.frames += 1
            self._last_message_at = time.time()
        if stripped[:1] == b"{":
            obj = json.loads(stripped)
            kind = obj.get("type")
            if kind not in {"candle", "alert"}:
                self._on_control(obj)
                return
        msgs = decode_batch(stripped)
        self._on_candles([m for m in msgs if isinstance(m, Candle)])

    def _on_control(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        with self._lock:
            self.control.append({"at": time.time(), **msg})
            if kind == "resync":
                self.resyncs += 1
                self._resync({s: self.book_limit for s in self._books}, reason=str(msg.get("reason", "resync")))
            elif kind == "error":
                log.warning("relay error %s: %s", msg.get("code"), msg.get("message"))

    def _resync(self, streams: dict[Stream, int], *, reason: str) -> None:
        """Mark streams for a fresh snapshot of their last ``n`` candles, books and sessions alike (lock held)."""
        if not streams:
            return
        log.debug("resync of %d stream(s): %s", len(streams), reason)
        for s in streams:
            b = self._books.get(s)
            if b is not None:
                b.synced = False
            for q in self._watchers.get(s, ()):
                q.mark_resync((s,))
        self._due(streams, None)

    def _due(self, streams: dict[Stream, int] | set[Stream], limit: int | None) -> None:
        """Queue snapshots for the worker (lock held); the larger request wins."""
        for s in streams:
            if s in self._books:
                n = limit if limit is not None else streams[s]  # type: ignore[index]
                self._snapshot_due[s] = max(n, self._snapshot_due.get(s, 0))
        self._wake.notify_all()

    def _on_candles(self, candles: list[Candle]) -> None:
        if not candles:
            return
        now = now_ms()
        at = time.time()
        gaps: dict[Stream, int] = {}
        with self._lock:
            self.candles_in += len(candles)
            per_queue: dict[int, list[Candle]] = {}
            for c in candles:
                s = c.stream
                book = self._books.get(s)
                if book is None:
                    continue  # a stream nobody wants any more
                last = self._seq.get(s)
                if last is not None and c.seq != last + 1:
                    if c.seq > last + 1:
                        gaps[s] = self._patch_size(book, c)
                    elif book.last is not None and c.open_time > book.last.open_time:
                        gaps[s] = self.book_limit  # seq went back on a newer candle: the ingest restarted
                    else:
                        continue  # a duplicate or an old update
                self._seq[s] = c.seq if last is None or s in gaps else max(last, c.seq)
                if c.emitted_at:
                    self._latency.add(at, max(0.0, now - c.emitted_at))
                book.apply(c)
                for q in self._watchers.get(s, ()):
                    per_queue.setdefault(id(q), []).append(c)
            if gaps:
                self.gaps += len(gaps)
                self._resync(gaps, reason="seq gap")
            queues = {id(q): q for q in self._queues.values()}
        for qid, items in per_queue.items():
            q = queues.get(qid)
            if q is not None:
                q.put_many(items)

    def _patch_size(self, book: StreamBook, c: Candle) -> int:
        """How many recent candles a gap resync fetches: what the hole can span, plus a margin."""
        if not book.loaded or book.last is None:
            return self.book_limit
        step = max(1, c.close_time - c.open_time + 1)
        missed = max(0, (c.open_time - book.last.open_time) // step)
        return int(min(self.book_limit, missed + 5))

    # ------------------------------------------------------------ worker thread (REST)

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                due = dict(self._snapshot_due) if self._state == "live" else {}
                for s in due:
                    del self._snapshot_due[s]
                stats_wanted = any(q.wants_stats for q in self._queues.values())
                symbols_due = self._state == "live" and time.time() - self._symbols_at > 60
                if not due and not symbols_due:
                    last = self.stats.at_ms / 1000 if self.stats else 0.0
                    stats_due = stats_wanted and time.time() - last >= self.stats_every_s
                    if not stats_due:
                        self._wake.wait(self.stats_every_s / 4 if stats_wanted else 1.0)
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

    def _fetch_snapshot(self, s: Stream, limit: int) -> None:
        with self._lock:
            book = self._books.get(s)
            if book is None:
                return
            patch = book.loaded and limit < self.book_limit
            book.begin_snapshot()
        try:
            candles = self.client.candles(s[0], s[1], limit=limit)
        except RelayError as exc:
            with self._lock:
                if self._books.get(s) is book:
                    book.fail_snapshot(str(exc))
                    if exc.status is None:  # relay unreachable: the reconnect reschedules it
                        return
            return
        with self._lock:
            if self._books.get(s) is not book:
                return
            if patch:
                book.merge_snapshot(candles)
            else:
                book.load_snapshot(candles)
            self.snapshots += 1
            if book.last is not None:
                self._seq[s] = max(self._seq.get(s, -1), book.last.seq)
            for q in self._watchers.get(s, ()):
                q.mark_resync((s,))  # redraw from the fresh snapshot
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


def _describe(exc: BaseException, relay_url: str) -> str:
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if isinstance(exc, ConnectionRefusedError) or "refused" in low:
        return "connection refused"
    if isinstance(exc, websocket.WebSocketBadStatusException):
        code = getattr(exc, "status_code", None)
        if code in (401, 403):
            return f"the relay refused the token (HTTP {code})"
        return f"the relay answered HTTP {code} on /ws"
    if isinstance(exc, TimeoutError | websocket.WebSocketTimeoutException) or "timed out" in low:
        return "timed out"
    return text
