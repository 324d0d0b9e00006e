"""The Redis sink: one pipelined round trip per flush, whatever the number of viewers.

Each candle is encoded once; the same bytes go to the ``latest`` key, the
``recent`` set and (joined into arrays) the ``crypto:updates`` channel.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

import redis

from backend.cache import CacheKeys, queue_candle_writes
from backend.config import Settings
from backend.models import Candle, encode_message, join_encoded

log = logging.getLogger(__name__)

MAX_PER_MESSAGE = 500  # candles per PUBLISH: keeps one message well under a megabyte
RETRY_CAP = 200_000  # closed candles kept for Redis while it is down


class RedisSink:
    """Writes candles to the cache and publishes them; survives a Redis outage.

    While Redis is unreachable, closed candles wait in a bounded buffer and go
    out with the next successful flush (forming candles are superseded anyway).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        keys: CacheKeys,
        channel: str,
        recent_cap: int = 1000,
        latest_ttl_s: int = 86_400,
    ) -> None:
        self.client = client
        self.keys = keys
        self.channel = channel
        self.recent_cap = recent_cap
        self.latest_ttl_s = latest_ttl_s
        self._known_symbols: set[str] = set()
        self._latest_written: dict[tuple[str, str], int] = {}  # per stream: the period its `latest` holds
        self._retry: deque[Candle] = deque(maxlen=RETRY_CAP)
        self.flushes = 0
        self.published = 0
        self.errors = 0
        self.healthy = True
        # PUBLISH answers how many subscribers got the message: the relays listening (monitoring)
        self.receivers: int | None = None
        self.unheard = 0  # messages published while no relay listened

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis) -> RedisSink:
        """The sink for ``settings``' key prefix, channel, cache cap and TTL."""
        return cls(
            client,
            keys=CacheKeys(settings.redis_prefix),
            channel=settings.updates_channel,
            recent_cap=settings.recent_cap,
            latest_ttl_s=settings.latest_ttl_s,
        )

    def put(self, candles: Sequence[Candle]) -> bool:
        """Cache and publish ``candles`` in one round trip; False when Redis failed."""
        if self._retry:
            candles = [*self._retry, *candles]
        if not candles:
            return True
        encoded = [encode_message(c) for c in candles]
        pipe = self.client.pipeline(transaction=False)
        latest = queue_candle_writes(
            pipe,
            self.keys,
            candles,
            encoded,
            recent_cap=self.recent_cap,
            latest_ttl_s=self.latest_ttl_s,
            latest_written=self._latest_written,
        )
        new_symbols = {c.symbol for c in candles} - self._known_symbols
        if new_symbols:
            pipe.sadd(self.keys.symbols, *sorted(new_symbols))
        messages = 0
        for i in range(0, len(encoded), MAX_PER_MESSAGE):
            pipe.publish(self.channel, join_encoded(encoded[i : i + MAX_PER_MESSAGE]))
            messages += 1
        try:
            results = pipe.execute()
        except redis.RedisError as exc:
            self.errors += 1
            if self.healthy:
                log.warning("Redis write failed (%s); keeping closed candles until it returns", exc)
            self.healthy = False
            self._retry = deque((c for c in candles if c.closed), maxlen=RETRY_CAP)
            self._known_symbols.clear()  # a restarted Redis may have lost the symbol set: add them again
            return False
        if not self.healthy:
            log.info("Redis is back; %d closed candles delivered", len(self._retry))
        self.healthy = True
        self._retry.clear()
        self._known_symbols |= new_symbols
        self._latest_written |= latest
        self.flushes += 1
        self.published += len(candles)
        receivers = results[-messages:]
        self.receivers = receivers[-1]
        self.unheard += sum(1 for n in receivers if n == 0)
        return True

    def close(self, timeout: float = 10.0) -> int:
        """Nothing to flush: each ``put`` goes out at once (what an outage holds back waits for a later put;
        the cache is not history: the SQL sink answers for closed candles)."""
        return 0

    def stats(self) -> dict[str, Any]:
        """Redis health for the System page: ``redis_ok``, ``redis_errors``, and who hears the PUBLISHes."""
        return {
            "redis_ok": self.healthy,
            "redis_errors": self.errors,
            "publish_receivers": self.receivers,
            "publish_unheard": self.unheard,
        }
