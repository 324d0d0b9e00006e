"""The ingest service: source → aggregator → sinks (:mod:`backend.sinks`).

The loop is synchronous and single-threaded on the hot path: each flush of the
aggregator goes to every sink in turn (the Redis sink in one pipelined round
trip; the SQL sink only queues for its own thread, so a slow or dead database
never stalls the candles).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis

from backend.aggregate import Aggregator
from backend.cache import CacheKeys
from backend.config import Settings
from backend.models import Candle, now_ms
from backend.sinks import Sink
from backend.sources import Source

log = logging.getLogger(__name__)

STATS_EVERY_MS = 1000


class IngestService:
    """Runs one source through the aggregator into its sinks until stopped.

    ``client`` is the Redis the pipeline figures go to (the stats hash); the
    candles go only to ``sinks`` (see :func:`backend.sinks.default_sinks`).
    """

    def __init__(self, settings: Settings, source: Source, client: redis.Redis, sinks: Sequence[Sink]) -> None:
        self.settings = settings
        self.source = source
        self.keys = CacheKeys(settings.redis_prefix)
        self.aggregator = Aggregator(
            settings.intervals, emit_ms=settings.emit_ms, live=source.live, close_grace_ms=settings.close_grace_ms
        )
        self.sinks = tuple(sinks)
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
        for sink in self.sinks:
            sink.put(candles)
        self.candles_out += len(candles)

    def run(self, stop: threading.Event) -> None:
        agg = self.aggregator
        take_finals = getattr(self.source, "take_finals", None)  # a live exchange's own candles (backfill)
        resume = getattr(self.source, "resume", None)  # a live exchange fetches what came after restored candles
        if resume is not None:
            resume(agg.last_trades())
        for batch in self.source.batches(stop):
            agg.live = self.source.live  # a source may replay its recent past before it goes live
            if take_finals is not None:
                for symbol, rollups in take_finals():
                    agg.put_final(symbol, rollups)
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
        """Let every sink deliver what it still holds."""
        for sink in self.sinks:
            sink.close()

    def stats(self, now: int) -> dict[str, Any]:
        agg = self.aggregator
        mono = time.monotonic()
        t0, trades0, out0 = self._rate_mark
        if mono - t0 >= 0.5:
            self.trades_per_s = (agg.trades_in - trades0) / (mono - t0)
            self.updates_per_s = (self.candles_out - out0) / (mono - t0)
            self._rate_mark = (mono, agg.trades_in, self.candles_out)
        figures = {
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
        }
        source_stats = getattr(self.source, "stats", None)  # a live exchange's feed state
        if source_stats is not None:
            figures |= source_stats()
        for sink in self.sinks:
            figures |= sink.stats()
        return figures

    def report_stats(self, now: int) -> None:
        """Publish the pipeline figures to Redis for the relay's ``/api/v1/stats``."""
        self._last_stats = now
        stats = self.stats(now)
        with contextlib.suppress(redis.RedisError):  # the Redis sink already reports Redis health
            self.client.hset(self.keys.stats("ingest"), mapping={k: json.dumps(v) for k, v in stats.items()})
