"""Relay workers report their figures to Redis, so that whichever answers ``/ws/stats`` or ``/metrics`` speaks for all.

Every relay process (a worker of ``--workers N``, or a relay on another host of the
same deployment) SETs its :class:`~backend.relay.bodies.WorkerStats` as JSON under
``{prefix}:relay:{HOST:PID}`` with a TTL of :data:`REPORT_TTL_S`, every
:data:`REPORT_EVERY_S`, and adds its id to the set ``{prefix}:relays``. A reader takes
its own figures live and the others' with one SMEMBERS and one MGET, removing the
members whose key has expired. A worker that dies stops refreshing its key, so it
drops out by itself within the TTL; no clocks are compared across hosts. That is one
pipelined round trip per worker per second, whatever the number of viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Sequence

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from backend.cache import CacheKeys
from backend.relay.bodies import RedisState, RelayFigures, RelayStats, WorkerStats

log = logging.getLogger(__name__)

REPORT_EVERY_S = 1.0
REPORT_TTL_S = 5  # a worker missing this long is gone (killed, or cut off from Redis)
READ_TIMEOUT_S = 1.0  # /ws/stats answers with this worker alone rather than wait longer for the others

_decode = msgspec.json.Decoder(WorkerStats).decode
_encode = msgspec.json.Encoder().encode
# the figures that add up over workers: every integer one
SUMMED = tuple(f.name for f in msgspec.structs.fields(RelayFigures) if f.type is int)


def worker_id() -> str:
    """``HOST:PID``: unique across the hosts of a deployment, and names the process to look at."""
    return f"{socket.gethostname()}:{os.getpid()}"


def total(workers: Sequence[WorkerStats], answering: str) -> RelayStats:
    """Every worker's figures summed (delay: the largest; uptime: the oldest worker's), and each one's.

    ``workers`` is never empty: the answering worker is always among them.
    """
    subscriptions: dict[str, int] = {}
    for w in workers:
        for key, n in w.subscriptions.items():
            subscriptions[key] = subscriptions.get(key, 0) + n
    delays = [w.last_delay_ms for w in workers if w.last_delay_ms is not None]
    first = workers[0].redis
    return RelayStats(
        **{name: sum(getattr(w, name) for w in workers) for name in SUMMED},
        subscriptions=dict(sorted(subscriptions.items())),
        redis=RedisState(
            connected=all(w.redis.connected for w in workers),
            reconnects=sum(w.redis.reconnects for w in workers),
            channel=first.channel,
            channels=first.channels,
        ),
        last_delay_ms=max(delays, default=None),
        uptime_s=max(w.uptime_s for w in workers),
        worker=answering,
        workers=sorted(workers, key=lambda w: w.worker),
    )


class Reporter:
    """This worker's side: report its figures every second, read everyone's, withdraw on a clean stop."""

    def __init__(self, redis: aioredis.Redis, keys: CacheKeys, own: Callable[[], WorkerStats]) -> None:
        self.redis = redis
        self.keys = keys
        self.own = own
        self.worker = own().worker
        self.key = keys.relay(self.worker)
        self.failing = False

    async def run(self) -> None:
        """Report every :data:`REPORT_EVERY_S` until cancelled; a Redis outage only skips reports."""
        while True:
            try:
                await self.report()
                self.failing = False
            except (RedisError, OSError) as exc:
                if not self.failing:
                    log.warning("relay figures not reported to Redis (%s); retrying every second", exc)
                self.failing = True
            await asyncio.sleep(REPORT_EVERY_S)

    async def report(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.setex(self.key, REPORT_TTL_S, _encode(self.own()))
        pipe.sadd(self.keys.relays, self.worker)
        await pipe.execute()

    async def workers(self) -> list[WorkerStats]:
        """Every live worker's figures, this one's live; this one alone when Redis does not answer in time."""
        own = self.own()
        try:
            others = await asyncio.wait_for(self._others(), READ_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError):
            others = []
        return [own, *others]

    async def _others(self) -> list[WorkerStats]:
        members = sorted(m.decode() for m in await self.redis.smembers(self.keys.relays))
        members = [m for m in members if m != self.worker]
        if not members:
            return []
        values = await self.redis.mget([self.keys.relay(m) for m in members])
        gone = [m for m, v in zip(members, values, strict=True) if v is None]
        if gone:  # their keys expired: dead workers
            await self.redis.srem(self.keys.relays, *gone)
        out = []
        for value in values:
            if value is not None:
                with contextlib.suppress(msgspec.DecodeError):  # unreadable: another version's figures
                    out.append(_decode(value))
        return out

    async def withdraw(self) -> None:
        """On a clean stop: drop out of the figures at once (a killed worker drops out when its key expires)."""
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            pipe = self.redis.pipeline(transaction=False)
            pipe.delete(self.key)
            pipe.srem(self.keys.relays, self.worker)
            await asyncio.wait_for(pipe.execute(), READ_TIMEOUT_S)
