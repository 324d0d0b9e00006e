"""One WebSocket client of the fan-out: its streams, its unsent updates and the task that sends them.

Per client, unsent updates wait in a bounded buffer: a client that keeps up
gets every update in order; a slow one is coalesced to the newest candle per
stream, and closed (4008 "slow consumer") when it stays behind. It never
delays the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING

from starlette.types import Send

if TYPE_CHECKING:
    from backend.relay.hub import Hub
    from backend.relay.transport import WriteFrame

log = logging.getLogger(__name__)

MAX_CONTROL_BACKLOG = 256  # replies a client has not read yet (it sends but does not read)
BUFFER_PER_STREAM = 4  # unsent updates per subscribed stream before a client counts as slow...
BUFFER_SPARE = 16  # ...plus these (a message can carry a close and the next candle of each stream)


class Client:
    """One WebSocket connection: its streams, its unsent updates and the task that sends them.

    Unsent updates wait in arrival order, so a client that keeps up gets every
    one. When more wait than a couple of messages' worth, the client is slow:
    its buffer becomes one entry per stream (the newest candle) until it has
    caught up, which bounds its memory whatever the update rate. (``now`` is
    the dispatch's loop time, the same for every object of one message.)
    """

    __slots__ = (
        "behind_since",
        "closed",
        "control",
        "hold",
        "hub",
        "latest_only",
        "peer",
        "queue",
        "send",
        "send_started",
        "sender",
        "slots",
        "streams",
        "wake",
        "write",
    )

    def __init__(self, hub: Hub, send: Send, peer: str, write: WriteFrame | None = None) -> None:
        self.hub = hub
        self.send = send
        self.write = write
        self.peer = peer
        self.streams: set[str] = set()
        self.queue: list[bytes] = []  # unsent updates, in arrival order
        self.slots: list[str | bytes] = []  # their stream keys (an alert's slot is its own bytes)
        self.latest_only: dict[str | bytes, bytes] | None = None  # set while coalescing
        self.control: deque[str] = deque()
        self.wake = asyncio.Event()
        self.hold = 0  # > 0 while a snapshot is prepared: updates wait behind it
        self.behind_since = 0.0  # loop time at which the oldest unsent update arrived
        self.send_started = 0.0  # loop time at which the send in progress began
        self.closed = False
        self.sender: asyncio.Task[None] | None = None

    def offer(self, slot: str | bytes, raw: bytes, now: float) -> bool:
        """Queue an update (hot path: once per subscriber per object); True when it is the first one waiting."""
        latest_only = self.latest_only
        if latest_only is not None:
            if slot in latest_only:
                self.hub.coalesced += 1
            latest_only[slot] = raw
            return False
        queue = self.queue
        first = not queue
        if first:
            self.behind_since = now
        queue.append(raw)
        self.slots.append(slot)
        # only a client that was already behind when this message came is slow: a big message alone is not
        if self.behind_since != now and len(queue) > BUFFER_PER_STREAM * len(self.streams) + BUFFER_SPARE:
            self._coalesce()
        return first

    def flush(self) -> None:
        """Send what waits as one frame: written at once when nothing is ahead of it, else by the sender task."""
        if self.hold:
            return
        write = self.write
        if write is not None and not self.send_started and not self.control:
            parts = self.waiting()
            if parts and write(self.hub.wire_frame(parts)):
                self._clear()
                self.hub.messages_out += 1
                self.hub.updates_out += len(parts)
                return
        self.wake.set()

    def _coalesce(self) -> None:
        """Keep only the newest unsent candle of each stream from now until the client catches up."""
        latest_only: dict[str | bytes, bytes] = {}
        for slot, raw in zip(self.slots, self.queue, strict=True):
            latest_only[slot] = raw
        self.hub.coalesced += len(self.queue) - len(latest_only)
        self.queue.clear()
        self.slots.clear()
        self.latest_only = latest_only

    @property
    def unsent(self) -> int:
        return len(self.queue) if self.latest_only is None else len(self.latest_only)

    def waiting(self) -> tuple[bytes, ...]:
        """Everything unsent, oldest first."""
        return tuple(self.queue if self.latest_only is None else self.latest_only.values())

    def take(self) -> tuple[bytes, ...]:
        """Everything unsent, oldest first, leaving an empty buffer in arrival-order mode."""
        parts = self.waiting()
        self._clear()
        return parts

    def _clear(self) -> None:  # behind_since is set again by the next offer, before anything reads it
        self.latest_only = None
        self.queue.clear()
        self.slots.clear()

    def take_stream(self, key: str) -> bytes | None:
        """Remove a stream's unsent updates; the newest of them (a snapshot supersedes them)."""
        latest_only = self.latest_only
        if latest_only is not None:
            raw = latest_only.pop(key, None)
            if not latest_only:  # nothing left unsent: caught up, so the next update is sent at once
                self._clear()
            return raw
        if key not in self.slots:  # the common case: a list scan, no copies
            return None
        newest_raw = None
        keep_slots: list[str | bytes] = []
        keep: list[bytes] = []
        for slot, raw in zip(self.slots, self.queue, strict=True):
            if slot == key:
                newest_raw = raw
            else:
                keep_slots.append(slot)
                keep.append(raw)
        self.slots[:] = keep_slots
        self.queue[:] = keep
        return newest_raw

    def push_control(self, text: str) -> None:
        """Queue a control message or a snapshot frame; these go out before any update."""
        if self.closed:
            return
        if len(self.control) >= MAX_CONTROL_BACKLOG:
            self.hub.drop_slow(self, "control backlog")
            return
        self.control.append(text)
        self.wake.set()

    def lag(self, now: float) -> float:
        """How long this client has kept an update (or a send) waiting."""
        behind = now - self.behind_since if self.unsent and not self.hold else 0.0
        sending = now - self.send_started if self.send_started else 0.0
        return max(behind, sending)

    async def run_sender(self) -> None:
        """Send control messages, then everything unsent as one frame; repeat when woken."""
        hub = self.hub
        send = self.send
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.control:
                    text = self.control.popleft()
                    self.send_started = loop.time()
                    await send({"type": "websocket.send", "text": text})
                    self.send_started = 0.0
                if self.hold or not self.unsent:
                    continue
                parts = self.take()
                text = hub.frame(parts)
                self.send_started = loop.time()
                await send({"type": "websocket.send", "text": text})
                self.send_started = 0.0
                hub.messages_out += 1
                hub.updates_out += len(parts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer is gone (uvicorn raises its own disconnect type)
            log.debug("send to %s failed: %r", self.peer, exc)
            self.closed = True
            hub.remove(self)

    def shut(self, code: int, reason: str) -> None:
        """Stop sending and close the connection with ``code`` without waiting for the peer."""
        if self.closed:
            return
        self.closed = True
        self.hub.remove(self)
        self.take()
        self.control.clear()
        if self.sender is not None:
            self.sender.cancel()
        self.hub.spawn(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.send({"type": "websocket.close", "code": code, "reason": reason})
