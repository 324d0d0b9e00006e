"""The feed as the pages see it: one listener and one REST worker per process, wired together.

A page registers its session, says which streams it wants, and reads the
books (never doing I/O in its rerun); the listener and the worker do the
rest on their own threads (see :mod:`services.feed`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from backend.backoff import Backoff
from services.client import RelayClient
from services.feed.book import DEFAULT_BOOK_LIMIT, Stream, StreamBook
from services.feed.listener import Listener
from services.feed.queue import DEFAULT_QUEUE_SIZE, SessionQueue
from services.feed.rest import RestWorker, StatsSample
from services.feed.sessions import SessionRegistry
from services.feed.state import FeedState
from services.feed.status import FeedStatus
from services.feed.streams import Streams


class Feed:
    """The pages' side of the feed: sessions register and say what they want, pages read the books.

    The listener and the REST worker run on their own threads; a page's rerun never does I/O here.
    """

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
        self.queue_size = queue_size
        self.client = client or RelayClient(self.relay_url, token)
        self.state = FeedState(SessionRegistry(), Streams(book_limit))
        self.rest = RestWorker(self.state, self.client, stats_every_s=stats_every_s)
        self.listener = Listener(
            self.state,
            self.relay_url,
            token,
            backoff=Backoff(backoff_initial, backoff_max),
            recv_timeout_s=recv_timeout_s,
            on_connect=self.rest.refresh_symbols,
        )
        self._lock = self.state.lock
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Feed:
        if self._threads:
            return self
        for name, target in (("listener", self.listener.run), ("worker", self.rest.run)):
            t = threading.Thread(target=target, name=f"candles-feed-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.state.stop.set()
        self.listener.close()
        for t in self._threads:
            t.join(timeout)
        self.client.close()

    # ------------------------------------------------------------ sessions

    def register(self, session_id: str) -> SessionQueue:
        q = SessionQueue(session_id, self.queue_size)
        q.on_close(self.release)
        with self._lock:
            self.state.sessions.add(q)
        return q

    def release(self, q: SessionQueue) -> None:
        """Forget a session (idempotent); streams nobody wants any more are unsubscribed."""
        with self._lock:
            if not self.state.sessions.remove(q):
                return
            self.listener.sync_subscriptions()
        q.close()

    def want(self, q: SessionQueue, streams: Iterable[Stream], *, stats: bool = False, page: str = "") -> None:
        """Set what a session needs; the listener (un)subscribes to match all sessions together."""
        new = frozenset(streams)
        with self._lock:
            if not self.state.sessions.holds(q):
                return
            if self.state.sessions.want(q, new, stats=stats, page=page):
                self.listener.sync_subscriptions()
            if stats:
                self.state.wake.notify_all()

    def sessions(self) -> list[SessionQueue]:
        with self._lock:
            return self.state.sessions.all()

    # ------------------------------------------------------------ reads for pages (no I/O)

    @property
    def symbols(self) -> list[str]:
        return self.rest.symbols

    @property
    def intervals(self) -> list[str]:
        return self.rest.intervals

    @property
    def stats(self) -> StatsSample | None:
        return self.rest.stats

    @property
    def stats_history(self) -> deque[StatsSample]:
        return self.rest.stats_history

    def book(self, stream: Stream) -> StreamBook | None:
        return self.state.streams.books.get(stream)

    def read(self, stream: Stream, fn: Callable[[StreamBook], Any]) -> Any:
        """Run ``fn`` on a stream's book under the feed's lock (None when there is no book)."""
        with self._lock:
            b = self.state.streams.books.get(stream)
            return None if b is None else fn(b)

    def wait_loaded(self, streams: Iterable[Stream], timeout: float) -> bool:
        """Block until every stream's book has a snapshot (or the timeout); for a page's first draw."""
        wanted = list(streams)
        deadline = time.monotonic() + timeout
        books, conn = self.state.streams.books, self.state.connection
        with self._lock:
            while True:
                if all((b := books.get(s)) is not None and b.loaded for s in wanted):
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or conn.state in {"down", "stopped"}:
                    return False
                self.state.wake.wait(min(left, 0.25))

    def wait_symbols(self, timeout: float) -> list[str]:
        """The relay's symbols, waiting up to ``timeout`` for the first list (not while the relay is down)."""
        return self.rest.wait_symbols(timeout)

    def status(self) -> FeedStatus:
        return self.listener.status()

    def subscribed(self) -> set[Stream]:
        return self.listener.subscribed()
