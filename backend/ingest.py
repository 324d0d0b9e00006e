"""The ingest service: source → aggregator → sinks (:mod:`backend.sinks`).

The loop is synchronous and single-threaded on the hot path: each flush of the
aggregator goes to every sink in turn (the Redis sink in one pipelined round
trip; the SQL sink appends to its spool file and queues for its own thread, so
a slow or dead database never stalls the candles and no exit loses them).

After each flush the states of the symbols that changed (open candles, ``seq``,
last trade counted) go to Redis (``{prefix}:resume``, one HSET); on start they
are read back and every stream continues where it was: a restart mid-minute
neither drops nor double-counts that minute's trades.
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
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from backend.aggregate import Aggregator
from backend.cache import CacheKeys, load_resume_states, save_resume_states
from backend.config import Settings
from backend.models import Candle, now_ms
from backend.sinks import Sink
from backend.sources import Resumable, ResumePoint, Source
from backend.store import query_candles
from backend.streams import StreamState, SymbolState

log = logging.getLogger(__name__)

STATS_EVERY_MS = 1000


class IngestService:
    """Runs one source through the aggregator into its sinks until stopped.

    ``client`` is the Redis the pipeline figures go to (the stats hash) and the
    stream states are kept in; the candles go only to ``sinks`` (see
    :func:`backend.sinks.default_sinks`). ``history`` is the database the SQL sink
    writes: with no state in Redis (an embedded server starts empty), a source that
    makes its own trades goes on from the newest candle there.
    """

    def __init__(
        self,
        settings: Settings,
        source: Source,
        client: redis.Redis,
        sinks: Sequence[Sink],
        history: Engine | None = None,
    ) -> None:
        self.settings = settings
        self.history = history
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
        self.resumed_streams = 0
        self._unsaved: dict[str, SymbolState] = {}  # states Redis has not taken yet

    def emit(self, candles: list[Candle]) -> None:
        if not candles:
            return
        for sink in self.sinks:
            sink.put(candles)
        self.candles_out += len(candles)

    def emit_due(self, now: int, *, force: bool = False) -> None:
        """Publish what the aggregator has due, a bounded list at a time (a long gap's flat candles)."""
        for chunk in self.aggregator.drain_chunks(now, force=force):
            self.emit(chunk)

    def run(self, stop: threading.Event) -> None:
        agg = self.aggregator
        take_finals = getattr(self.source, "take_finals", None)  # a live exchange's own candles (backfill)
        # a live exchange fetches what came after the restored candles (not Resumable: it makes no trades itself)
        continue_after = getattr(self.source, "continue_after", None)
        if self.settings.resume:
            self.restore()
        if continue_after is not None:
            continue_after(agg.last_trades())
        try:
            for batch in self.source.batches(stop):
                agg.live = self.source.live  # a source may replay its recent past before it goes live
                if take_finals is not None:
                    for symbol, rollups in take_finals():
                        agg.put_final(symbol, rollups)
                agg.add(batch)
                now = now_ms()
                self.emit_due(now)
                self.save_state()
                if now - self._last_stats >= STATS_EVERY_MS:
                    self.report_stats(now)
        finally:  # a source that fails mid-way (a corrupt file) still gets what it read so far published
            self.emit_due(now_ms(), force=True)
            self.save_state()
            self.report_stats(now_ms())
        log.info(
            "ingest finished: %d trades, %d candles published, rejected %s, late %d, already counted %d",
            agg.trades_in,
            self.candles_out,
            self.source.rejects.summary(),
            sum(agg.late.values()),
            agg.already_counted,
        )

    def restore(self) -> None:
        """Continue every stream from its state in Redis (see :mod:`backend.aggregate`): open candles,
        ``seq``, and for a replay the trades already counted. A source that makes its own trades
        (:class:`~backend.sources.Resumable`) goes on from the stored prices; a stream it cannot
        continue without a gap keeps only its ``seq``."""
        try:
            states, bad = load_resume_states(self.client, self.keys)
        except redis.RedisError as exc:
            log.warning("cannot read the stored stream states (%s): starting afresh", exc)
            return
        if bad:
            log.warning("stored stream states of %s do not decode: those start afresh", ", ".join(bad))
        wanted = self.settings.symbols
        states = [s for s in states if wanted is None or s.symbol in wanted]
        if not states:
            self.resume_from_history()
            return
        continued = {s.symbol for s in states}
        if isinstance(self.source, Resumable):
            continued = self.source.resume(
                {s.symbol: p for s in states if (p := _resume_point(s)) is not None}, now_ms()
            )
        for state in states:
            if state.symbol not in continued:  # only seq carries over
                state = SymbolState(state.symbol, None, [StreamState(s.interval, -1, s.seq) for s in state.streams])
            self.aggregator.restore(state)
        self.resumed_streams = sum(1 for s in states if s.symbol in continued for st in s.streams if st.open_time >= 0)
        log.info(
            "resumed %d symbols from Redis (%s): %d open candles continue, seq continues on every stream",
            len(states),
            self.keys.resume,
            self.resumed_streams,
        )

    def resume_from_history(self) -> None:
        """No state in Redis: a source that makes its own trades goes on from the newest stored candles
        (price and time), so it does not play over (rewrite) history already in the database."""
        if not isinstance(self.source, Resumable) or self.history is None:
            return
        finest = self.aggregator.intervals[0]
        points: dict[str, ResumePoint] = {}
        try:
            for symbol in self.source.symbols:
                newest = query_candles(self.history, symbol, finest, limit=1, descending=True)
                if newest:  # a closed candle is final: new trades start after its end
                    points[symbol] = ResumePoint(newest[0].close_time, 0, newest[0].close)
        except SQLAlchemyError as exc:
            log.warning("cannot read the newest stored candles (%s): the simulator starts afresh", exc)
            return
        if points:
            self.source.resume(points, now_ms())
            log.info("no stream state in Redis: %d symbols go on from their newest candles in SQL", len(points))

    def save_state(self) -> None:
        """Store the changed symbols' states (after the sinks took the flush: the spool is ahead of them)."""
        for state in self.aggregator.take_changed_state():
            self._unsaved[state.symbol] = state
        if not self._unsaved:
            return
        try:
            save_resume_states(self.client, self.keys, list(self._unsaved.values()))
        except redis.RedisError:
            return  # kept for the next flush; the Redis sink reports Redis health
        self._unsaved.clear()

    def close(self, timeout: float | None = None) -> int:
        """Let every sink deliver what it still holds within ``timeout`` (default: the drain timeout);
        returns how many closed candles are still undelivered (kept in the spool)."""
        timeout = self.settings.drain_timeout_s if timeout is None else timeout
        return sum(sink.close(timeout) for sink in self.sinks)

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
            "resumed_streams": self.resumed_streams,
            "trades_already_counted": agg.already_counted,
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


def _resume_point(state: SymbolState) -> ResumePoint | None:
    """The last trade and price of a stored state (None when it has no trade)."""
    open_streams = [s for s in state.streams if s.open_time >= 0]
    if state.last_trade is None or not open_streams:
        return None
    ts, trade_id = state.last_trade
    return ResumePoint(ts, trade_id, open_streams[0].close)
