"""Which session wants which stream: the feed's registry of live session queues.

The listener puts each candle into the queues that watch its stream, and
subscribes at the relay to the union of what sessions want.
"""

from __future__ import annotations

from services.feed.book import Stream
from services.feed.queue import SessionQueue


class SessionRegistry:
    """The live sessions' queues and, per stream, the queues that watch it.

    Not thread-safe by itself: the feed guards it with its lock.
    """

    def __init__(self) -> None:
        self.queues: dict[int, SessionQueue] = {}
        self.watchers: dict[Stream, set[SessionQueue]] = {}

    def __len__(self) -> int:
        return len(self.queues)

    def add(self, q: SessionQueue) -> None:
        self.queues[id(q)] = q

    def remove(self, q: SessionQueue) -> bool:
        """Forget a session and what it watched; False when it was not registered."""
        if self.queues.pop(id(q), None) is None:
            return False
        for s in q.streams:
            watchers = self.watchers.get(s)
            if watchers is not None:
                watchers.discard(q)
        q.streams = frozenset()
        q.wants_stats = False
        return True

    def holds(self, q: SessionQueue) -> bool:
        """True for a registered session whose queue is still open."""
        return not q.closed and id(q) in self.queues

    def want(self, q: SessionQueue, streams: frozenset[Stream], *, stats: bool, page: str) -> bool:
        """Set what a registered session needs; True when its streams changed."""
        q.page = page or q.page
        q.wants_stats = stats
        if streams == q.streams:
            return False
        for s in q.streams - streams:
            self.watchers.get(s, set()).discard(q)
        for s in streams - q.streams:
            self.watchers.setdefault(s, set()).add(q)
        q.streams = streams
        return True

    def desired(self) -> set[Stream]:
        """The streams at least one session watches."""
        return {s for s, qs in self.watchers.items() if qs}

    def prune(self) -> None:
        """Drop the streams nobody watches any more."""
        for s in list(self.watchers):
            if not self.watchers[s]:
                del self.watchers[s]

    def all(self) -> list[SessionQueue]:
        return list(self.queues.values())

    def wants_stats(self) -> bool:
        """True while a session shows the relay's stats (the system page)."""
        return any(q.wants_stats for q in self.queues.values())

    def mark_resync(self, stream: Stream) -> None:
        """Tell the sessions that watch ``stream`` to redraw it from a fresh snapshot."""
        for q in self.watchers.get(stream, ()):
            q.mark_resync((stream,))

    def mark_reconnected(self) -> None:
        for q in self.queues.values():
            q.mark_resync(reconnected=True)
