"""The ingest service: source → aggregator → sinks (Redis cache + publish, SQL).

The loop is synchronous and single-threaded on the hot path; the SQL writer
runs on its own thread so a slow or dead database never stalls the candles.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any

import redis
from sqlalchemy import Engine

from backend.aggregate import Aggregator
from backend.cache import CacheKeys
from backend.config import Settings
from backend.models import Candle, now_ms
from backend.publish import RedisPublisher
from backend.sources import Source
from backend.store import StoreWriter

log = logging.getLogger(__name__)

STATS_EVERY_MS = 1000


class IngestService:
    """Runs one source through the aggregator into Redis and SQL until stopped."""

    def __init__(self, settings: Settings, source: Source, client: redis.Redis, engine: Engine | None) -> None:
        self.settings = settings
        self.source = source
        self.keys = CacheKeys(settings.redis_prefix)
        self.aggregator = Aggregator(
            settings.intervals, emit_ms=settings.emit_ms, live=source.live, close_grace_ms=settings.close_grace_ms
        )
        self.publisher = RedisPublisher(
            client,
            keys=self.keys,
            channel=settings.updates_channel,
            recent_cap=settings.recent_cap,
            latest_ttl_s=settings.latest_ttl_s,
        )
        self.store = StoreWriter(engine) if engine is not None else None
        self.client = client
        self.started_at = now_ms()
        self.candles_out = 0
        self._last_stats = 0
        self._rate_mark = (time.monotonic(), 0, 0)
        self.trades_per_s = 0.0
        self.updates_per_s = 0.0

    def emit(self, candles: list[Candle]) -> None:
        if not candles:
            return
        self.publisher.flush(candles)
        if self.store is not None:
            self.store.put(candles)
        self.candles_out += len(candles)

    def run(self, stop: threading.Event) -> None:
        agg = self.aggregator
        for batch in self.source.batches(stop):
            agg.live = self.source.live  # a source may replay its recent past before it goes live
            agg.add(batch)
            now = now_ms()
            self.emit(agg.drain(now))
            if now - self._last_stats >= STATS_EVERY_MS:
                self.report_stats(now)
        self.emit(agg.drain(now_ms(), force=True))
        self.report_stats(now_ms())
        log.info(
            "ingest finished: %d trades, %d candles published, rejected %s, late %d",
            agg.trades_in,
            self.candles_out,
            self.source.rejects.summary(),
            sum(agg.late.values()),
        )

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def stats(self, now: int) -> dict[str, Any]:
        agg = self.aggregator
        mono = time.monotonic()
        t0, trades0, out0 = self._rate_mark
        if mono - t0 >= 0.5:
            self.trades_per_s = (agg.trades_in - trades0) / (mono - t0)
            self.updates_per_s = (self.candles_out - out0) / (mono - t0)
            self._rate_mark = (mono, agg.trades_in, self.candles_out)
        store = self.store
        return {
            "source": self.settings.source,
            "live": self.source.live,
            "symbols": agg.symbols,
            "intervals": list(agg.intervals),
            "started_at": self.started_at,
            "updated_at": now,
            "trades_in": agg.trades_in,
            "trades_per_s": round(self.trades_per_s, 1),
            "candles_published": self.candles_out,
            "updates_per_s": round(self.updates_per_s, 1),
            "late_trades": agg.late,
            "rejected_trades": self.source.rejects.counts,
            "redis_ok": self.publisher.healthy,
            "redis_errors": self.publisher.errors,
            "db_ok": store.healthy if store else None,
            "db_pending": store.pending if store else 0,
            "db_written": store.written if store else 0,
            "db_dropped": store.dropped if store else 0,
            "db_error": store.last_error if store else None,
        }

    def report_stats(self, now: int) -> None:
        """Publish the pipeline figures to Redis for the relay's ``/api/v1/stats``."""
        self._last_stats = now
        stats = self.stats(now)
        with contextlib.suppress(redis.RedisError):  # the publisher already reports Redis health
            self.client.hset(self.keys.stats("ingest"), mapping={k: json.dumps(v) for k, v in stats.items()})
