"""Where the Flink job's candles go: the project's own sinks, so the contracts are the ingest's.

Redis (:class:`backend.sinks.RedisSink`: ``latest``, ``recent``, the symbol set, PUBLISH of JSON
arrays on the updates channel), SQL (:class:`backend.sinks.SqlSink`: batched idempotent upserts of
closed candles, spooled to a file first) and the ``--out`` file (:class:`backend.candle_files.CandleFile`,
the writer of ``python -m backend aggregate --out``). Nothing here formats a candle itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from backend.candle_files import CandleFile
from backend.models import Candle, now_ms

if TYPE_CHECKING:
    from backend.config import Settings
    from backend.sinks.base import Sink


class CandleOutputs:
    """The job's destinations: a candle file (``out``) and the sinks of the ingest's contract."""

    def __init__(self, out: Path | None, sinks: Sequence[Sink]) -> None:
        self.file = CandleFile(out) if out is not None else None
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
        self.sinks = tuple(sinks)
        self.written = 0

    def put(self, candles: list[Candle]) -> None:
        """One flush of candles, in event order (within a stream in ``open_time`` order)."""
        if not candles:
            return
        if self.file is not None:
            self.file.add(candles)
        stamp = now_ms()
        for c in candles:
            c.emitted_at = stamp
        for sink in self.sinks:
            sink.put(candles)
        self.written += len(candles)

    def finish(self, timeout: float = 30.0) -> int:
        """Write the file and let every sink deliver what it holds; the number of closed candles undelivered."""
        try:
            if self.file is not None:
                self.file.finish()
        finally:
            undelivered = sum(sink.close(timeout) for sink in self.sinks)
        return undelivered

    def close(self) -> None:
        """Drop what an interrupted run buffered for the file (its spill folder)."""
        if self.file is not None:
            self.file.close()


def contract_sinks(settings: Settings) -> list[Sink]:
    """The Redis and SQL sinks for ``settings`` (its Redis must be named: a Flink job starts no server)."""
    import redis

    from backend.sinks import RedisSink, SqlSink
    from backend.sinks.spool import Spool, spool_path
    from backend.store import make_engine

    if settings.redis_url is None:
        raise ValueError("no Redis named: set CANDLES_REDIS_URL (the Redis the relay reads)")
    client = redis.Redis.from_url(settings.redis_url)
    database = settings.effective_database_url()
    engine = make_engine(database, timeouts=settings.db_timeouts())
    spool = Spool(spool_path(settings.data_dir, database, settings.redis_prefix))
    return [RedisSink.from_settings(settings, client), SqlSink(engine, spool=spool)]
