"""The WebSocket listener thread: connect, reconnect with backoff and jitter, subscribe, read frames.

It holds one websocket-client connection to the relay's ``/ws`` and
subscribes to exactly the streams that live sessions want. Each frame's
candles go into the stream's book and into the queue of every session that
watches the stream; a ``seq`` gap, a reconnect or the relay's ``resync``
message marks the stream for a fresh snapshot (fetched by the REST worker).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
import websocket

from backend.backoff import Backoff
from backend.models import AlertEvent, Candle, now_ms
from backend.protocol import ControlMessage, Error, Notice, Resync, decode_frame, encode_op, encode_stream_ops
from services.client import auth_headers, ws_url
from services.feed.book import Stream
from services.feed.latency import Latency
from services.feed.state import FeedState
from services.feed.status import FeedStatus

log = logging.getLogger(__name__)


class Listener:
    """One connection to the relay's ``/ws``, kept up by :meth:`run` on a daemon thread."""

    def __init__(
        self,
        shared: FeedState,
        relay_url: str,
        token: str | None = None,
        *,
        backoff: Backoff | None = None,
        recv_timeout_s: float = 5.0,
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        self.relay_url = relay_url
        self.token = token
        self.recv_timeout_s = recv_timeout_s
        self._backoff = backoff or Backoff()
        self._on_connect = on_connect  # called under the lock on every (re)connect
        self._lock, self._wake, self._stop = shared.lock, shared.wake, shared.stop
        self._sessions, self._streams, self._conn = shared.sessions, shared.streams, shared.connection
        self._ws: websocket.WebSocket | None = None
        self._subscribed: set[Stream] = set()
        self.frames = 0
        self.pongs = 0  # answers to our pings: a quiet relay is alive
        self.candles_in = 0
        self.gaps = 0
        self.resyncs = 0
        self.control: deque[dict[str, Any]] = deque(maxlen=50)
        self.alerts: deque[AlertEvent] = deque(maxlen=100)  # the newest fired alerts, newest last
        self._last_message_at: float | None = None
        self._latency = Latency()

    # ------------------------------------------------------------ for the feed

    def close(self) -> None:
        """Mark the connection stopped and close the socket (the stop flag is already set)."""
        with self._lock:
            ws = self._ws
            self._conn.state = "stopped"
            self._wake.notify_all()
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.close(timeout=0.5)

    def status(self) -> FeedStatus:
        with self._lock:
            conn = self._conn
            return FeedStatus(
                state=conn.state,
                relay_url=self.relay_url,
                error=conn.error,
                connected_since=conn.connected_since,
                down_since=conn.down_since,
                reconnects=conn.reconnects,
                attempts=conn.attempts,
                frames=self.frames,
                candles=self.candles_in,
                gaps=self.gaps,
                resyncs=self.resyncs,
                last_message_at=self._last_message_at,
                latency_ms=self._latency.summary(),
                streams=len(self._subscribed),
                sessions=len(self._sessions),
                next_attempt_at=conn.next_attempt_at,
            )

    def subscribed(self) -> set[Stream]:
        with self._lock:
            return set(self._subscribed)

    def sync_subscriptions(self) -> None:
        """Bring the relay subscription and the books in line with what sessions want (lock held)."""
        desired = self._sessions.desired()
        added = desired - self._subscribed
        removed = self._subscribed - desired
        self._streams.follow(desired, added)
        self._sessions.prune()
        ws = self._ws
        if ws is None:
            self._subscribed -= removed  # the next connection subscribes afresh
            return
        try:
            for text in [*encode_stream_ops("unsubscribe", removed), *encode_stream_ops("subscribe", added)]:
                ws.send(text)
        except Exception as exc:  # the listener notices the dead socket and reconnects
            log.info("subscription update failed: %s", exc)
            return
        self._subscribed = (self._subscribed - removed) | added
        if added:
            self._due(added, self._streams.book_limit)

    # ------------------------------------------------------------ the thread

    def run(self) -> None:
        url = ws_url(self.relay_url)
        header = [f"{name}: {value}" for name, value in auth_headers(self.token).items()]
        while not self._stop.is_set():
            with self._lock:
                self._conn.attempts += 1
            try:
                ws = websocket.create_connection(url, header=header, timeout=3.0, enable_multithread=True)
            except Exception as exc:
                self._went_down(_describe(exc, self.relay_url))
                continue
            self._connected(ws)
            try:
                self._receive(ws)
            finally:
                with contextlib.suppress(Exception):
                    ws.close(timeout=0.2)
                with self._lock:
                    self._ws = None
                    self._subscribed = set()
            if not self._stop.is_set():
                self._went_down(self._conn.error or "the relay closed the connection")

    def _went_down(self, reason: str) -> None:
        delay = self._backoff.next_delay()
        with self._lock:
            if self._stop.is_set():
                return
            self._conn.went_down(reason, delay)
            self._streams.unsync()
            self._wake.notify_all()
        log.info("relay unreachable (%s); retrying in %.1f s", reason, delay)
        self._stop.wait(delay)

    def _connected(self, ws: websocket.WebSocket) -> None:
        ws.settimeout(self.recv_timeout_s)
        with self._lock:
            self._ws = ws
            reconnect = self._conn.came_up()
            self._subscribed = set()
            self._streams.seq.clear()
            with contextlib.suppress(Exception):  # every alert, for the toasts of every session
                ws.send(encode_op("subscribe", alerts=True))
            if reconnect:
                self._sessions.mark_reconnected()
            self._streams.unsync()
            self.sync_subscriptions()
            self._due(set(self._streams.books), self._streams.book_limit)  # an outage can be long: full snapshots
            if self._on_connect is not None:
                self._on_connect()
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
                    self._conn.error = "the relay stopped answering"
                    return
                try:
                    ws.ping()
                except Exception:
                    return
                continue
            except websocket.WebSocketConnectionClosedException:
                self._conn.error = "connection lost"
                return
            except (websocket.WebSocketException, OSError) as exc:
                if not self._stop.is_set():
                    self._conn.error = f"connection lost: {_describe(exc, self.relay_url)}"
                return
            idle = 0
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self._conn.error = "the relay closed the connection"
                return
            if opcode == websocket.ABNF.OPCODE_PONG:
                self.pongs += 1
                continue
            if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY) or not data:
                continue  # a ping (websocket-client answers it), an empty frame
            try:
                self.handle_frame(data)
            except Exception:
                log.exception("could not handle a frame from the relay")

    # ------------------------------------------------------------ frames

    def handle_frame(self, data: str | bytes) -> None:
        """One WebSocket message: a JSON array of candles and alerts, or a control object."""
        with self._lock:
            self.frames += 1
            self._last_message_at = time.time()
        frame = decode_frame(data)
        if not isinstance(frame, list):
            self._on_control(frame)
            return
        candles = [m for m in frame if isinstance(m, Candle)]
        if len(candles) < len(frame):
            self._on_alerts([m for m in frame if isinstance(m, AlertEvent)])
        self._on_candles(candles)

    def _on_control(self, msg: ControlMessage) -> None:
        fields = msgspec.structs.asdict(msg)
        with self._lock:
            self.control.append({"at": time.time(), "type": type(msg).__struct_config__.tag, **fields})
            if isinstance(msg, Resync):
                self.resyncs += 1
                limit = self._streams.book_limit
                self._resync({s: limit for s in self._streams.books}, reason=msg.reason)
            elif isinstance(msg, Error):
                log.warning("relay error %s: %s", msg.code, msg.message)
            elif isinstance(msg, Notice):
                log.info("relay notice %s: %s", msg.code, msg.message)

    def _on_alerts(self, alerts: list[AlertEvent]) -> None:
        """Fired alerts go to every live session (a toast on whatever page it shows) and to the recent list."""
        with self._lock:
            self.alerts.extend(alerts)
            sessions = self._sessions.all()
        for q in sessions:
            q.put_alerts(alerts)

    def _resync(self, streams: dict[Stream, int], *, reason: str) -> None:
        """Mark streams for a fresh snapshot of their last ``n`` candles, books and sessions alike (lock held)."""
        if not streams:
            return
        log.debug("resync of %d stream(s): %s", len(streams), reason)
        for s in streams:
            b = self._streams.books.get(s)
            if b is not None:
                b.synced = False
            for q in self._sessions.watchers.get(s, ()):
                q.mark_resync((s,))
        self._due(streams, None)

    def _due(self, streams: dict[Stream, int] | set[Stream], limit: int | None) -> None:
        """Queue snapshots for the REST worker and wake it (lock held)."""
        self._streams.due(streams, limit)
        self._wake.notify_all()

    def _on_candles(self, candles: list[Candle]) -> None:
        if not candles:
            return
        now = now_ms()
        at = time.time()
        gaps: dict[Stream, int] = {}
        with self._lock:
            streams, books, seqs = self._streams, self._streams.books, self._streams.seq
            watchers, latency = self._sessions.watchers, self._latency
            self.candles_in += len(candles)
            per_queue: dict[int, list[Candle]] = {}
            for c in candles:
                s = c.stream
                book = books.get(s)
                if book is None:
                    continue  # a stream nobody wants any more
                last = seqs.get(s)
                if last is not None and c.seq != last + 1:
                    if c.seq > last + 1:
                        gaps[s] = streams.patch_size(book, c)
                    elif book.last is not None and c.open_time > book.last.open_time:
                        gaps[s] = streams.book_limit  # seq went back on a newer candle: the ingest restarted
                    else:
                        continue  # a duplicate or an old update
                seqs[s] = c.seq if last is None or s in gaps else max(last, c.seq)
                if c.emitted_at:
                    latency.add(at, max(0.0, now - c.emitted_at))
                book.apply(c)
                for q in watchers.get(s, ()):
                    per_queue.setdefault(id(q), []).append(c)
            if gaps:
                self.gaps += len(gaps)
                self._resync(gaps, reason="seq gap")
            queues = {id(q): q for q in self._sessions.queues.values()}
        for qid, items in per_queue.items():
            q = queues.get(qid)
            if q is not None:
                q.put_many(items)


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
