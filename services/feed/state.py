"""What the feed's threads share: one lock, its wake-up condition, the stop flag, and the state they guard.

The listener thread, the REST worker thread and the pages' reruns (through
the :class:`~services.feed.feed.Feed`) all work on the same sessions, books
and connection; one re-entrant lock guards them all, and ``wake`` tells a
waiting thread that something changed (a snapshot due, a connection, a
snapshot merged).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from services.feed.sessions import SessionRegistry
from services.feed.status import Connection
from services.feed.streams import Streams


@dataclass
class FeedState:
    """The shared state of one feed and the lock that guards it."""

    sessions: SessionRegistry
    streams: Streams
    connection: Connection = field(default_factory=Connection)
    lock: threading.RLock = field(default_factory=threading.RLock)
    stop: threading.Event = field(default_factory=threading.Event)
    wake: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.wake = threading.Condition(self.lock)
