"""Fan-out: which client wants which stream, and routing each Redis message to them.

Each Redis message is decoded once into a small routing head per object plus
that object's raw bytes; every subscriber of a stream gets those same bytes,
joined into its frame, and clients that get the same objects share one frame,
written straight to their sockets when the server allows it (no task switch,
no re-encoding). Redis work never grows with the number of viewers: snapshots
of live streams come from memory (``latest``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

from backend.config import Settings
from backend.models import join_encoded, now_ms
from backend.protocol import SLOW_CLOSE_CODE, SLOW_CLOSE_REASON
from backend.relay.client import Client
from backend.relay.heads import split_message
from backend.relay.transport import text_frame

log = logging.getLogger(__name__)


class Hub:
    """The clients of this process, their subscriptions, and the routing of updates to them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clients: set[Client] = set()
        self.subscribers: dict[str, set[Client]] = {}
        self.alert_subscribers: set[Client] = set()  # clients that asked for every alert
        self.intervals = tuple(settings.intervals)
        # newest candle per stream seen on the channel since the subscription (re)started:
        # a subscribe to a live stream needs no Redis round trip
        self.latest: dict[str, bytes] = {}
        self.latest_open: dict[str, int] = {}  # the open_time of each stream's ``latest``
        # frames built from this message's bytes, shared by the clients that get the same objects
        self._frames: dict[tuple[bytes, ...], bytes] = {}
        self._texts: dict[tuple[bytes, ...], str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.messages_in = 0
        self.messages_out = 0
        self.updates_in = 0
        self.updates_out = 0
        self.coalesced = 0
        self.dropped = 0
        self.slow_disconnects = 0
        self.invalid_messages = 0
        self.last_delay_ms: int | None = None

    # ------------------------------------------------------------ hot path

    def dispatch(self, data: bytes) -> None:
        """Route one Redis message: decode once, offer each object's bytes to its subscribers."""
        self.messages_in += 1
        message = split_message(data)
        if message is None:
            self._invalid(data)
            return
        heads, raws = message
        if self._frames or self._texts:
            self._frames.clear()
            self._texts.clear()
        now = asyncio.get_running_loop().time()
        latest, latest_open = self.latest, self.latest_open
        subscribers = self.subscribers
        self.updates_in += len(heads)
        first: list[Client] = []  # clients with nothing waiting before this message
        for head, raw in zip(heads, raws, strict=True):
            key = f"{head.symbol}:{head.interval}"  # backend.protocol.stream_key, inlined on the hot path
            encoded = bytes(raw)
            if head.type != "candle":  # alerts are events: each one is delivered, none replaces another
                for client in self.alert_audience(head.symbol):
                    if client.offer(encoded, encoded, now):
                        first.append(client)
                continue
            opened = head.open_time or 0
            if opened >= latest_open.get(key, opened):  # an exchange's final candle for an older period is not latest
                latest[key] = encoded
                latest_open[key] = opened
            subs = subscribers.get(key)
            if subs:
                for client in subs:
                    if client.offer(key, encoded, now):
                        first.append(client)
        for client in first:
            client.flush()
        if heads and heads[-1].emitted_at:
            self.last_delay_ms = now_ms() - heads[-1].emitted_at

    def alert_audience(self, symbol: str) -> set[Client]:
        """Who gets an alert of ``symbol``: subscribers of any of its streams, and of every alert."""
        audience = set(self.alert_subscribers)
        for interval in self.intervals:
            audience.update(self.subscribers.get(f"{symbol}:{interval}", ()))
        return audience

    def frame(self, parts: tuple[bytes, ...]) -> str:
        """The frame's text for an ASGI send, built once for every client that gets the same objects."""
        text = self._texts.get(parts)
        if text is None:
            text = self._texts[parts] = join_encoded(parts).decode()
        return text

    def wire_frame(self, parts: tuple[bytes, ...]) -> bytes:
        """The complete WebSocket frame for a direct write: the same bytes for every client that gets them."""
        frame = self._frames.get(parts)
        if frame is None:
            frame = self._frames[parts] = text_frame(join_encoded(parts))
        return frame

    def _invalid(self, data: bytes) -> None:
        self.invalid_messages += 1
        if self.invalid_messages == 1 or self.invalid_messages % 1000 == 0:
            log.warning("unreadable Redis message (%d so far): %r", self.invalid_messages, data[:120])

    # ------------------------------------------------------------ clients and subscriptions

    def attach(self, client: Client, keys: Iterable[str]) -> None:
        """Subscribe ``client`` to the stream keys."""
        for key in keys:
            client.streams.add(key)
            self.subscribers.setdefault(key, set()).add(client)

    def detach(self, client: Client, keys: Iterable[str]) -> None:
        """Unsubscribe ``client`` from the stream keys, dropping what it had not received of them."""
        for key in list(keys):
            client.streams.discard(key)
            client.take_stream(key)
            subs = self.subscribers.get(key)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self.subscribers[key]

    def remove(self, client: Client) -> None:
        self.detach(client, client.streams)
        self.alert_subscribers.discard(client)
        self.clients.discard(client)

    def drop_slow(self, client: Client, why: str = "behind") -> None:
        """Close a client that stays behind; what it had not received is counted as dropped."""
        if client.closed:
            return
        self.slow_disconnects += 1
        self.dropped += client.unsent
        log.warning("closing slow client %s (%s): %d updates unsent", client.peer, why, client.unsent)
        client.shut(SLOW_CLOSE_CODE, SLOW_CLOSE_REASON)

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_watchdog(self) -> None:
        """Close clients that have kept an update waiting longer than ``ws_slow_timeout_s``."""
        limit = self.settings.ws_slow_timeout_s
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(0.5, limit / 4))
            now = loop.time()
            for client in [c for c in self.clients if c.lag(now) > limit]:
                self.drop_slow(client)
