"""What one relay process holds, and its lifespan: the Redis client, hub, subscriber, reporter, database, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from backend.cache import CacheKeys
from backend.config import Settings
from backend.relay.bodies import RedisState, RelayStats, WorkerStats
from backend.relay.database import Database
from backend.relay.errors import ApiError
from backend.relay.hub import Hub
from backend.relay.metrics import Metrics
from backend.relay.report import Reporter, total, worker_id
from backend.relay.subscriber import Subscriber

log = logging.getLogger(__name__)

REDIS_POOL_SIZE = 50  # connections to Redis per relay process, at most
REDIS_POOL_WAIT_S = 10.0  # a request waits this long for one of them, then fails as if Redis were down


def without_credentials(url: str) -> str:
    """A URL fit for a log line: ``redis://user:secret@host`` → ``redis://host``."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rsplit("@", 1)[-1] if sep else url


class Relay:
    """The parts of one relay process, built from its settings, and the tasks that run them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = CacheKeys(settings.redis_prefix)
        # a blocking pool: when every client reconnects at once (a relay restart under hundreds of viewers),
        # their snapshot reads wait for a free connection instead of failing with "Too many connections"
        self.redis = aioredis.Redis.from_pool(
            aioredis.BlockingConnectionPool.from_url(
                settings.redis_url or "redis://127.0.0.1:6379/0",
                max_connections=REDIS_POOL_SIZE,
                timeout=REDIS_POOL_WAIT_S,
                socket_connect_timeout=2,
                socket_timeout=5,
                retry=Retry(NoBackoff(), 1),  # one retry: a pooled connection from before a Redis restart
                client_name="candles-relay",
            )
        )
        self.hub = Hub(settings)
        self.subscriber = Subscriber(settings, self.hub, self.redis)
        self.db = Database(settings.effective_database_url(), settings.db_timeouts())
        self.metrics = Metrics()
        self.started = time.monotonic()
        self.worker = worker_id()
        self.reporter = Reporter(self.redis, self.keys, self.own_stats)
        self._tasks: list[asyncio.Task[None]] = []

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        """Start the one Redis subscription, the slow-client watchdog and the SQL engine."""
        self._tasks = [
            asyncio.create_task(self.subscriber.run(), name="redis-subscriber"),
            asyncio.create_task(self.hub.run_watchdog(), name="slow-client-watchdog"),
            asyncio.create_task(self.reporter.run(), name="figures-reporter"),
        ]
        with contextlib.suppress(ApiError, TimeoutError):  # history answers 503 until the database is there
            await asyncio.wait_for(self.db.get(), 5)
        gc.freeze()  # what exists now lives as long as the process: keep the collector's full passes off it
        log.info(
            "relay ready: Redis %s (channels %s), SQL %s",
            without_credentials(self.settings.redis_url or ""),
            ", ".join(self.subscriber.channels),
            without_credentials(self.db.url),
        )
        try:
            yield
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.reporter.withdraw()
            await self.redis.aclose()
            self.db.close()

    async def stats(self) -> RelayStats:
        """``GET /ws/stats``: every relay worker's figures (this one's live), in total and one by one."""
        return total(await self.reporter.workers(), self.worker)

    def own_stats(self) -> WorkerStats:
        """This process's figures: the hub's and the subscription's state."""
        hub = self.hub
        return WorkerStats(
            worker=self.worker,
            host=socket.gethostname(),
            pid=os.getpid(),
            connections=len(hub.clients),
            subscriptions={k: len(v) for k, v in sorted(hub.subscribers.items())},
            messages_in=hub.messages_in,
            messages_out=hub.messages_out,
            updates_in=hub.updates_in,
            updates_out=hub.updates_out,
            coalesced=hub.coalesced,
            dropped=hub.dropped,
            slow_disconnects=hub.slow_disconnects,
            invalid_messages=hub.invalid_messages,
            redis=RedisState(
                connected=self.subscriber.connected,
                reconnects=self.subscriber.reconnects,
                channel=self.settings.updates_channel,
                channels=list(self.subscriber.channels),
            ),
            last_delay_ms=hub.last_delay_ms,
            uptime_s=round(time.monotonic() - self.started, 1),
        )
