"""``WS /ws``: accept a connection, then speak :mod:`backend.protocol` with it until it closes.

Each client message is an op: ``subscribe`` (acknowledged, then one snapshot
frame of the streams' latest candles, from memory when the hub has seen them,
else from the Redis cache), ``unsubscribe`` and ``ping``. A malformed message
is answered with an ``error`` control message; the connection stays up.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.types import Receive, Scope, Send

from backend.cache import CacheKeys, fetch_latest, known_symbols
from backend.config import Settings
from backend.protocol import (
    REDIS_UNAVAILABLE,
    TOO_MANY_STREAMS,
    UNKNOWN_SYMBOL,
    ClientOp,
    Error,
    Notice,
    OpId,
    Pong,
    ProtocolError,
    Subscribed,
    Unsubscribed,
    decode_op,
    encode_control,
    op_id_of,
    op_streams,
    split_stream_key,
    unsubscribe_selection,
)
from backend.relay.client import Client
from backend.relay.heads import newest
from backend.relay.hub import Hub
from backend.relay.transport import WRITE_FRAME_EXTENSION, WriteFrame

log = logging.getLogger(__name__)


class WebSocketEndpoint:
    """``WS /ws`` as a plain ASGI app: each connection becomes a hub client that sends ops."""

    def __init__(self, settings: Settings, hub: Hub, redis: aioredis.Redis) -> None:
        self.hub = hub
        self.redis = redis  # snapshots of streams the hub has not seen yet
        self.keys = CacheKeys(settings.redis_prefix)
        self.intervals = tuple(settings.intervals)
        self.max_streams = settings.ws_max_streams
        self.max_chars = settings.ws_max_message_chars
        self.max_depth = settings.ws_max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        rid = scope.get("state", {}).get("request_id", "")
        await send({"type": "websocket.accept", "headers": [(b"x-request-id", rid.encode())]})
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "-"
        log.info("WebSocket %s open rid=%s", peer, rid)
        try:
            write = scope.get("extensions", {}).get(WRITE_FRAME_EXTENSION)
            await self.serve(receive, send, peer=peer, write=write)
        finally:
            log.info("WebSocket %s closed rid=%s", peer, rid)

    async def serve(self, receive: Receive, send: Send, *, peer: str, write: WriteFrame | None = None) -> None:
        """Run one accepted WebSocket connection until it closes."""
        hub = self.hub
        client = Client(hub, send, peer, write)
        hub.clients.add(client)
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
                except ProtocolError as exc:
                    client.push_control(encode_control(Error(exc.code, exc.message, op_id_of(text, self.max_depth))))
        finally:
            client.closed = True
            hub.remove(client)
            if client.sender is not None:
                client.sender.cancel()

    async def handle(self, client: Client, text: str) -> None:
        """Answer one client message (subscribe, unsubscribe, ping)."""
        op = decode_op(text, max_chars=self.max_chars, max_depth=self.max_depth)
        if op.op == "ping":
            client.push_control(encode_control(Pong(op.id)))
        elif op.op == "subscribe":
            if op.alerts:
                self.hub.alert_subscribers.add(client)
                if not op.symbols:
                    client.push_control(encode_control(Subscribed([], op.id, True)))
                    return
            await self.subscribe(client, op_streams(op, self.intervals, required=True), op.id, op.alerts)
        else:
            self.unsubscribe(client, op)

    async def subscribe(
        self, client: Client, streams: list[str], op_id: OpId = None, alerts: bool | None = None
    ) -> None:
        """Add streams, acknowledge, then send one snapshot frame of their latest candles."""
        cap = self.max_streams
        new = [s for s in streams if s not in client.streams]
        if len(client.streams) + len(new) > cap:
            raise ProtocolError(
                TOO_MANY_STREAMS,
                f"at most {cap} streams per connection ({len(client.streams)} subscribed, {len(new)} more asked)",
            )
        self.hub.attach(client, new)
        client.push_control(encode_control(Subscribed(streams, op_id, alerts)))
        snapshot: dict[str, bytes] = {}
        missing: dict[str, bytes | None] = {}
        for key in streams:
            unsent = client.take_stream(key)  # the snapshot carries the newest
            raw = self.hub.latest.get(key)
            if raw is None:
                missing[key] = unsent
            else:
                snapshot[key] = raw
        notice = None
        if missing:
            client.hold += 1  # updates that arrive meanwhile wait behind the snapshot and the notice
            try:
                try:
                    fetched = await fetch_latest(self.redis, self.keys, missing)
                except RedisError as exc:
                    fetched = {}
                    message = f"no snapshot ({exc}); it follows on reconnect"
                    client.push_control(encode_control(Error(REDIS_UNAVAILABLE, message)))
                for key, unsent in missing.items():
                    # updates that arrived meanwhile may be newer than what Redis answered
                    best = newest(fetched.get(key), client.take_stream(key) or unsent)
                    if best is not None:
                        snapshot[key] = best
                notice = await self.unknown_notice(streams, snapshot, op_id)
            finally:
                client.hold -= 1
        client.push_control(self.hub.frame(tuple(snapshot[k] for k in streams if k in snapshot)))
        if notice is not None:  # in the same step as the snapshot, so always right after it
            client.push_control(notice)

    async def unknown_notice(self, streams: list[str], snapshot: dict[str, bytes], op_id: OpId) -> str | None:
        """A ``notice`` naming the asked symbols the relay has never seen (their subscriptions stay)."""
        seen = {split_stream_key(k)[0] for k in snapshot}
        unseen = [s for s in dict.fromkeys(split_stream_key(k)[0] for k in streams) if s not in seen]
        if not unseen:
            return None
        try:
            known = await known_symbols(self.redis, self.keys, unseen)
        except RedisError:
            return None  # cannot tell: say nothing rather than something wrong
        unknown = [s for s in unseen if s not in known]
        if not unknown:
            return None
        message = f"no candles were ever seen for {', '.join(unknown)}; still subscribed, updates follow if they appear"
        return encode_control(Notice(UNKNOWN_SYMBOL, message, unknown, op_id))

    def unsubscribe(self, client: Client, op: ClientOp) -> None:
        """Remove the named streams (symbols and intervals default to all subscribed ones)."""
        op_streams(op, self.intervals, required=False)  # validates names
        if op.alerts:
            self.hub.alert_subscribers.discard(client)
            if not op.symbols and not op.intervals:
                client.push_control(encode_control(Unsubscribed([], op.id, True)))
                return
        removed = unsubscribe_selection(op, client.streams)
        self.hub.detach(client, removed)
        client.push_control(encode_control(Unsubscribed(removed, op.id, op.alerts)))
