"""The listener's connection to the relay: its state as it changes, and what a page shows of it."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Connection:
    """The connection's state and when it changed; the listener writes it, everyone reads it.

    Guarded by the feed's lock.
    """

    state: str = "connecting"  # "connecting" | "live" | "down" | "stopped"
    error: str | None = None
    connected_since: float | None = None
    down_since: float | None = None
    next_attempt_at: float | None = None
    ever_connected: bool = False
    generation: int = 0  # bumps on every (re)connect: pages can tell a recovery
    reconnects: int = 0
    attempts: int = 0

    def went_down(self, reason: str, retry_in: float) -> None:
        if self.down_since is None:
            self.down_since = time.time()
        self.state = "down"
        self.error = reason
        self.connected_since = None
        self.next_attempt_at = time.time() + retry_in

    def came_up(self) -> bool:
        """Record a new connection; True when it is a reconnect."""
        reconnect = self.ever_connected
        self.state = "live"
        self.error = None
        self.connected_since = time.time()
        self.down_since = None
        self.next_attempt_at = None
        self.ever_connected = True
        self.generation += 1
        if reconnect:
            self.reconnects += 1
        return reconnect


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
