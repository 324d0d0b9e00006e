"""The one Redis subscription of a relay process: reconnect with backoff, resync the clients after an outage.

Clients stay connected through a Redis outage; when the subscription is back,
each gets a ``resync`` control message and a fresh snapshot of its streams, so
nothing published meanwhile is missed for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from backend.cache import CacheKeys, fetch_latest
from backend.config import Settings
from backend.protocol import Resync, encode_control
from backend.relay.heads import newest
from backend.relay.hub import Hub

log = logging.getLogger(__name__)

RECONNECT_MAX_S = 5.0
IDLE_PING_S = 10.0  # ping the subscription after this long without a message...
PING_DEADLINE_S = 5.0  # ...and treat it as lost when no answer comes in this long


class Subscriber:
    """Feeds every message of the updates and alerts channels to the hub."""

    def __init__(self, settings: Settings, hub: Hub, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.hub = hub
        self.redis = redis  # for the snapshots of a resync
        self.keys = CacheKeys(settings.redis_prefix)
        self.channels = (settings.updates_channel, settings.alerts_channel)
        self.connected = False
        self.reconnects = 0

    async def run(self) -> None:
        """Subscribe, pump messages, and on any failure start over with backoff (forever)."""
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
                self.connected = True
                if attempt:
                    await self.resync()
                backoff = 0.0
                await self._pump(pubsub)
            except (RedisError, OSError) as exc:
                if self.connected or attempt == 0:
                    log.warning("Redis subscription lost (%s); clients stay connected, reconnecting", exc)
                self.connected = False
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
        dispatch = self.hub.dispatch
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

    async def resync(self) -> None:
        """After a Redis outage: tell every client, and send it a fresh snapshot of its streams."""
        hub = self.hub
        hub.latest.clear()
        hub.latest_open.clear()
        clients = [c for c in hub.clients if c.streams and not c.closed]
        if not clients:
            return
        for c in clients:
            c.hold += 1
        try:
            fetched = await fetch_latest(self.redis, self.keys, sorted(set().union(*(c.streams for c in clients))))
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
            c.push_control(encode_control(Resync("redis_reconnected")))
            c.push_control(hub.frame(tuple(parts)))
        log.info("resync: fresh snapshots sent to %d clients", len(clients))
