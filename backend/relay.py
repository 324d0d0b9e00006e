"""WebSocket fan-out: one Redis subscription per process, any number of viewers.

Each Redis message is decoded once into a small routing head per object plus
that object's raw bytes; every subscriber of a stream gets those same bytes,
joined into its frame, and clients that get the same objects share one frame,
written straight to their sockets when the server allows it (no task switch,
no re-encoding). Per client, unsent updates wait in a bounded buffer: a client
that keeps up gets every update in order; a slow one is coalesced to the
newest candle per stream, and closed (4008 "slow consumer") when it stays
behind. It never delays the others, and Redis work never grows with the
number of viewers: snapshots of live streams come from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from backend.cache import CacheKeys
from backend.config import Settings
from backend.models import join_encoded, normalize_symbol, now_ms

log = logging.getLogger(__name__)

SLOW_CLOSE_CODE = 4008  # a client that stays behind is closed with this code
SLOW_CLOSE_REASON = "slow consumer"
MAX_CLIENT_MESSAGE_CHARS = 16_384  # a 200-stream subscribe is about 5 KB
MAX_CONTROL_BACKLOG = 256  # replies a client has not read yet (it sends but does not read)
BUFFER_PER_STREAM = 4  # unsent updates per subscribed stream before a client counts as slow...
BUFFER_SPARE = 16  # ...plus these (a message can carry a close and the next candle of each stream)
MGET_CHUNK = 500
RECONNECT_MAX_S = 5.0
IDLE_PING_S = 10.0  # ping the subscription after this long without a message...
PING_DEADLINE_S = 5.0  # ...and treat it as lost when no answer comes in this long

# The server may offer, in the WebSocket scope's extensions, a function that writes a
# prebuilt frame to the connection at once (True) or declines (False: closed, or its
# buffer is full); backend.api's uvicorn protocol does. Frames then cost one write per
# client, the same bytes for all; without it every send goes through ASGI.
WRITE_FRAME_EXTENSION = "candles.write_frame"

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
WriteFrame = Callable[[bytes], bool]


class Head(msgspec.Struct):
    """The fields the relay routes and orders by; the rest of an object stays raw bytes."""

    type: str = ""
    symbol: str = ""
    interval: str = ""
    open_time: int = 0
    seq: int = 0
    emitted_at: int = 0


_heads = msgspec.json.Decoder(list[Head])
_raws = msgspec.json.Decoder(list[msgspec.Raw])
_head = msgspec.json.Decoder(Head)
_json = msgspec.json.Encoder()


class ClientOp(msgspec.Struct):
    """A message from a WebSocket client; ``id`` is echoed in the reply."""

    op: str
    symbols: list[str] | None = None
    intervals: list[str] | None = None
    id: int | str | None = None


_client_op = msgspec.json.Decoder(ClientOp)


class RedisState(msgspec.Struct):
    connected: bool
    reconnects: int
    channel: str
    channels: list[str]


class RelayStats(msgspec.Struct):
    """``GET /ws/stats``: what this relay process is doing."""

    connections: int
    subscriptions: dict[str, int]
    messages_in: int
    messages_out: int
    updates_in: int
    updates_out: int
    coalesced: int
    dropped: int
    slow_disconnects: int
    invalid_messages: int
    redis: RedisState
    last_delay_ms: int | None
    uptime_s: float


def stream_key(symbol: str, interval: str) -> str:
    return f"{symbol}:{interval}"


def control(kind: str, **fields: object) -> str:
    """A control message (a single JSON object, never an array)."""
    return _json.encode({"type": kind, **{k: v for k, v in fields.items() if v is not None}}).decode()


def text_frame(payload: bytes) -> bytes:
    """A server-to-client WebSocket text frame (RFC 6455: final, unmasked) around ``payload``."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


def newest(a: bytes | None, b: bytes | None) -> bytes | None:
    """The newer of two encodings of a stream's candle, by (open_time, seq); ``b`` wins a tie."""
    if a is None or b is None:
        return b if a is None else a
    ha, hb = _head.decode(a), _head.decode(b)
    return a if (ha.open_time, ha.seq) > (hb.open_time, hb.seq) else b


class ClientError(Exception):
    """A malformed client message: answered with an error message, the connection stays up."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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

    def _clear(self) -> None:
        self.latest_only = None
        self.queue.clear()
        self.slots.clear()
        self.behind_since = 0.0

    def take_stream(self, key: str) -> bytes | None:
        """Remove a stream's unsent updates; the newest of them (a snapshot supersedes them)."""
        if self.latest_only is not None:
            return self.latest_only.pop(key, None)
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


class Hub:
    """Subscriptions, routing and the one Redis subscription of this process."""

    def __init__(self, settings: Settings, redis_client: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis_client
        self.keys = CacheKeys(settings.redis_prefix)
        self.channels = (settings.updates_channel, settings.alerts_channel)
        self.intervals = frozenset(settings.intervals)
        self.clients: set[Client] = set()
        self.subscribers: dict[str, set[Client]] = {}
        # newest candle per stream seen on the channel since the subscription (re)started:
        # a subscribe to a live stream needs no Redis round trip
        self.latest: dict[str, bytes] = {}
        # frames built from this message's bytes, shared by the clients that get the same objects
        self._frames: dict[tuple[bytes, ...], bytes] = {}
        self._texts: dict[tuple[bytes, ...], str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.started = time.monotonic()
        self.messages_in = 0
        self.messages_out = 0
        self.updates_in = 0
        self.updates_out = 0
        self.coalesced = 0
        self.dropped = 0
        self.slow_disconnects = 0
        self.invalid_messages = 0
        self.last_delay_ms: int | None = None
        self.redis_connected = False
        self.reconnects = 0

    # ------------------------------------------------------------ hot path

    def dispatch(self, data: bytes) -> None:
        """Route one Redis message: decode once, offer each object's bytes to its subscribers."""
        self.messages_in += 1
        try:
            heads = _heads.decode(data)
            raws = _raws.decode(data)
        except msgspec.ValidationError:
            try:  # a single object instead of an array
                heads, raws = [_head.decode(data)], [msgspec.Raw(data)]
            except msgspec.DecodeError:
                self._invalid(data)
                return
        except msgspec.DecodeError:
            self._invalid(data)
            return
        if self._frames or self._texts:
            self._frames.clear()
            self._texts.clear()
        now = asyncio.get_running_loop().time()
        latest = self.latest
        subscribers = self.subscribers
        self.updates_in += len(heads)
        first: list[Client] = []  # clients with nothing waiting before this message
        for head, raw in zip(heads, raws, strict=True):
            key = f"{head.symbol}:{head.interval}"
            encoded = bytes(raw)
            slot: str | bytes = key
            if head.type == "candle":
                latest[key] = encoded
            else:  # alerts are events: each one is delivered, none replaces another
                slot = encoded
            subs = subscribers.get(key)
            if subs:
                for client in subs:
                    if client.offer(slot, encoded, now):
                        first.append(client)
        for client in first:
            client.flush()
        if heads and heads[-1].emitted_at:
            self.last_delay_ms = now_ms() - heads[-1].emitted_at

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

    # ------------------------------------------------------------ connections

    async def serve(self, receive: Receive, send: Send, *, peer: str, write: WriteFrame | None = None) -> None:
        """Run one accepted WebSocket connection until it closes."""
        client = Client(self, send, peer, write)
        self.clients.add(client)
        client.sender = asyncio.create_task(client.run_sender())
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.disconnect":
                    break
                if kind != "websocket.receive" or client.closed:
                    continue
                text = message.get("text")
                if text is None:
                    text = (message.get("bytes") or b"").decode("utf-8", "replace")
                try:
                    await self.handle(client, text)
                except ClientError as exc:
                    client.push_control(control("error", code=exc.code, message=exc.message, id=_op_id(text)))
        finally:
            client.closed = True
            self.remove(client)
            if client.sender is not None:
                client.sender.cancel()

    async def handle(self, client: Client, text: str) -> None:
        """Answer one client message (subscribe, unsubscribe, ping)."""
        if len(text) > MAX_CLIENT_MESSAGE_CHARS:
            raise ClientError("too_large", f"messages are limited to {MAX_CLIENT_MESSAGE_CHARS} characters")
        try:
            op = _client_op.decode(text)
        except msgspec.ValidationError as exc:
            raise ClientError("bad_message", str(exc)) from None
        except msgspec.DecodeError:
            raise ClientError("bad_json", 'messages must be JSON objects like {"op": "subscribe", …}') from None
        if op.op == "ping":
            client.push_control(control("pong", id=op.id))
        elif op.op == "subscribe":
            await self.subscribe(client, self._streams(op, required=True), op.id)
        elif op.op == "unsubscribe":
            self.unsubscribe(client, op)
        else:
            raise ClientError("unknown_op", f"unknown op {op.op!r}: use subscribe, unsubscribe or ping")

    def _streams(self, op: ClientOp, *, required: bool) -> list[str]:
        """Validated stream keys of a subscribe/unsubscribe (symbols × intervals, in order)."""
        if required and not op.symbols:
            raise ClientError("bad_message", "symbols must list at least one symbol")
        symbols: list[str] = []
        for raw in op.symbols or ():
            sym = normalize_symbol(raw)
            if sym is None:
                raise ClientError("bad_symbol", f"bad symbol {raw[:40]!r}: use 2 to 20 letters or digits, like BTCUSDT")
            symbols.append(sym)
        intervals = list(self.settings.intervals) if op.intervals is None else op.intervals
        if not intervals:
            raise ClientError("bad_message", "intervals must not be empty")
        for name in intervals:
            if name not in self.intervals:
                raise ClientError("bad_interval", f"unknown interval {name[:20]!r}; choose from {self._interval_list}")
        return list(dict.fromkeys(stream_key(s, i) for s in symbols for i in intervals))

    @property
    def _interval_list(self) -> str:
        return ", ".join(self.settings.intervals)

    async def subscribe(self, client: Client, streams: list[str], op_id: int | str | None = None) -> None:
        """Add streams, acknowledge, then send one snapshot frame of their latest candles."""
        cap = self.settings.ws_max_streams
        new = [s for s in streams if s not in client.streams]
        if len(client.streams) + len(new) > cap:
            raise ClientError(
                "too_many_streams",
                f"at most {cap} streams per connection ({len(client.streams)} subscribed, {len(new)} more asked)",
            )
        for key in new:
            client.streams.add(key)
            self.subscribers.setdefault(key, set()).add(client)
        client.push_control(control("subscribed", streams=streams, id=op_id))
        snapshot: dict[str, bytes] = {}
        missing: dict[str, bytes | None] = {}
        for key in streams:
            unsent = client.take_stream(key)  # the snapshot carries the newest
            raw = self.latest.get(key)
            if raw is None:
                missing[key] = unsent
            else:
                snapshot[key] = raw
        if missing:
            client.hold += 1
            try:
                fetched = await self.fetch_latest(missing)
            except RedisError as exc:
                fetched = {}
                client.push_control(
                    control("error", code="redis_unavailable", message=f"no snapshot ({exc}); it follows on reconnect")
                )
            finally:
                client.hold -= 1
            for key, unsent in missing.items():
                # updates that arrived meanwhile may be newer than what Redis answered
                best = newest(fetched.get(key), client.take_stream(key) or unsent)
                if best is not None:
                    snapshot[key] = best
        client.push_control(self.frame(tuple(snapshot[k] for k in streams if k in snapshot)))

    def unsubscribe(self, client: Client, op: ClientOp) -> None:
        """Remove the named streams (symbols and intervals default to all subscribed ones)."""
        self._streams(op, required=False)  # validates names
        symbols = {normalize_symbol(s) for s in op.symbols} if op.symbols else None
        intervals = set(op.intervals) if op.intervals else None
        removed = []
        for key in sorted(client.streams):
            sym, interval = key.split(":", 1)
            if (symbols is None or sym in symbols) and (intervals is None or interval in intervals):
                removed.append(key)
        self._detach(client, removed)
        client.push_control(control("unsubscribed", streams=removed, id=op.id))

    def _detach(self, client: Client, keys: Iterable[str]) -> None:
        for key in list(keys):
            client.streams.discard(key)
            client.take_stream(key)
            subs = self.subscribers.get(key)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self.subscribers[key]

    def remove(self, client: Client) -> None:
        self._detach(client, client.streams)
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

    # ------------------------------------------------------------ Redis

    async def fetch_latest(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The cached ``latest`` candle of each stream key (absent streams are left out)."""
        keys = list(keys)
        out: dict[str, bytes] = {}
        for i in range(0, len(keys), MGET_CHUNK):
            chunk = keys[i : i + MGET_CHUNK]
            values = await self.redis.mget([self.keys.latest(*k.split(":", 1)) for k in chunk])
            out.update({k: v for k, v in zip(chunk, values, strict=True) if v is not None})
        return out

    async def resync(self) -> None:
        """After a Redis outage: tell every client, and send it a fresh snapshot of its streams."""
        self.latest.clear()
        clients = [c for c in self.clients if c.streams and not c.closed]
        if not clients:
            return
        for c in clients:
            c.hold += 1
        try:
            fetched = await self.fetch_latest(sorted(set().union(*(c.streams for c in clients))))
        except BaseException:  # no snapshot now (the next reconnect brings one): release the updates held
            for c in clients:
                c.hold -= 1
                c.flush()
            raise
        for c in clients:
            c.hold -= 1
        for c in clients:
            parts = []
            for key in sorted(c.streams):
                best = newest(fetched.get(key), c.take_stream(key))
                if best is not None:
                    parts.append(best)
            c.push_control(control("resync", reason="redis_reconnected"))
            c.push_control(self.frame(tuple(parts)))
        log.info("resync: fresh snapshots sent to %d clients", len(clients))

    async def run_subscriber(self) -> None:
        """The one Redis subscription: reconnect with backoff, resync the clients after an outage."""
        attempt = 0
        backoff = 0.0
        while True:
            client = aioredis.Redis.from_url(
                self.settings.redis_url or "redis://127.0.0.1:6379/0",
                retry=Retry(NoBackoff(), 0),  # a lost connection must surface here, not be hidden
                socket_connect_timeout=2,
                socket_keepalive=True,
                client_name="candles-relay-sub",
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self.channels)
                if attempt:
                    self.reconnects += 1
                    log.info("Redis subscription restored (reconnect %d)", self.reconnects)
                self.redis_connected = True
                if attempt:
                    await self.resync()
                backoff = 0.0
                await self._pump(pubsub)
            except (RedisError, OSError) as exc:
                if self.redis_connected or attempt == 0:
                    log.warning("Redis subscription lost (%s); clients stay connected, reconnecting", exc)
                self.redis_connected = False
                backoff = min(RECONNECT_MAX_S, max(0.1, backoff * 2))
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            finally:
                attempt += 1
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def _pump(self, pubsub: aioredis.client.PubSub) -> None:
        """Read messages until the connection fails; a silent connection is pinged, then given up."""
        loop = asyncio.get_running_loop()
        last_seen = loop.time()
        pinged_at = 0.0
        dispatch = self.dispatch
        while True:
            message = await pubsub.get_message(timeout=1.0)
            now = loop.time()
            if message is None:
                if pinged_at and now - pinged_at > PING_DEADLINE_S:
                    raise RedisError("no answer to PING on the subscription")
                if not pinged_at and now - last_seen > IDLE_PING_S:
                    pinged_at = now
                    await pubsub.ping()
                continue
            last_seen = now
            pinged_at = 0.0
            if message["type"] == "message":
                dispatch(message["data"])

    # ------------------------------------------------------------ figures

    def stats(self) -> RelayStats:
        return RelayStats(
            connections=len(self.clients),
            subscriptions={k: len(v) for k, v in sorted(self.subscribers.items())},
            messages_in=self.messages_in,
            messages_out=self.messages_out,
            updates_in=self.updates_in,
            updates_out=self.updates_out,
            coalesced=self.coalesced,
            dropped=self.dropped,
            slow_disconnects=self.slow_disconnects,
            invalid_messages=self.invalid_messages,
            redis=RedisState(
                connected=self.redis_connected,
                reconnects=self.reconnects,
                channel=self.settings.updates_channel,
                channels=list(self.channels),
            ),
            last_delay_ms=self.last_delay_ms,
            uptime_s=round(time.monotonic() - self.started, 1),
        )


def _op_id(text: str) -> int | str | None:
    """The ``id`` of a message that failed validation, when it has a readable one."""
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None
    op_id = value.get("id") if isinstance(value, dict) else None
    return op_id if isinstance(op_id, int | str) and not isinstance(op_id, bool) else None
