"""SQL storage: closed candles (history) and alert rules/events. SQLAlchemy 2.

SQLite by default, PostgreSQL by ``CANDLES_DATABASE_URL`` (psycopg 3). Candle
writes are batched idempotent upserts on (symbol, interval, open_time), so a
replay or a retry never duplicates. :class:`StoreWriter` takes closed candles
off the hot path and keeps them through a database outage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from backend.models import Candle

log = logging.getLogger(__name__)

metadata = MetaData()

candles = Table(
    "candles",
    metadata,
    Column("symbol", String(20), primary_key=True),
    Column("interval", String(4), primary_key=True),
    Column("open_time", BigInteger, primary_key=True),
    Column("close_time", BigInteger, nullable=False),
    Column("open", Double, nullable=False),
    Column("high", Double, nullable=False),
    Column("low", Double, nullable=False),
    Column("close", Double, nullable=False),
    Column("volume", Double, nullable=False),
    Column("quote_volume", Double, nullable=False),
    Column("trades", BigInteger, nullable=False),
    Column("taker_buy_volume", Double, nullable=False),
    Column("taker_buy_quote_volume", Double, nullable=False),
    Column("event_time", BigInteger, nullable=False),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("symbol", String(20), nullable=False),
    Column("interval", String(4), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("threshold", JSON),
    Column("frequency", String(12), nullable=False, default="once"),
    Column("cooldown_s", Integer, nullable=False, default=0),
    Column("lookback", Integer),
    Column("factor", Double),
    Column("expires_at", BigInteger),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("note", Text, nullable=False, default=""),
    Column("state", String(10), nullable=False, default="armed"),
    Column("created_at", BigInteger, nullable=False),
    Column("watch", String(16), nullable=False, server_default="close"),
    Column("targets", JSON, nullable=False, server_default="[]"),
    Column("last_fired_at", BigInteger),
    Column("fire_count", Integer, nullable=False, server_default="0"),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Integer, nullable=False),
    Column("symbol", String(20), nullable=False),
    Column("interval", String(4), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("threshold", JSON),
    Column("value", Double, nullable=False),
    Column("message", Text, nullable=False),
    Column("fired_at", BigInteger, nullable=False),
    Column("open_time", BigInteger),
    Column("deliveries", JSON, nullable=False, server_default="[]"),
    Index("ix_alert_events_rule", "rule_id", "id"),
    Index("ix_alert_events_symbol", "symbol", "id"),
)

CANDLE_COLUMNS = tuple(c.name for c in candles.columns)
_VALUE_COLUMNS = tuple(n for n in CANDLE_COLUMNS if n not in {"symbol", "interval", "open_time"})


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 here."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, busy_timeout_ms: int = 5000) -> Engine:
    """An engine on a database at the newest schema (migrated on the way); SQLite in WAL mode."""
    url = normalize_url(url)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.close()

    from backend.migrations import migrate  # the migrations read this module's metadata

    migrate(engine)
    return engine


def candle_row(c: Candle) -> dict[str, object]:
    return {name: getattr(c, name) for name in CANDLE_COLUMNS}


def upsert_candles(engine: Engine, rows: Sequence[Candle]) -> int:
    """Insert or replace closed candles in one transaction; returns the number written."""
    if not rows:
        return 0
    # one row per key (the newest wins) so a batch never conflicts with itself
    unique = {(c.symbol, c.interval, c.open_time): c for c in rows}
    values = [candle_row(c) for c in unique.values()]
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(candles)
    stmt = stmt.on_conflict_do_update(
        index_elements=["symbol", "interval", "open_time"],
        set_={name: stmt.excluded[name] for name in _VALUE_COLUMNS},
    )
    with engine.begin() as conn:
        for i in range(0, len(values), 5000):
            conn.execute(stmt, values[i : i + 5000])
    return len(values)


def row_to_candle(row: object) -> Candle:
    m = row._mapping  # type: ignore[attr-defined]
    return Candle(**{name: m[name] for name in CANDLE_COLUMNS}, closed=True, seq=0)


def query_candles(
    engine: Engine,
    symbol: str,
    interval: str,
    *,
    start: int | None = None,
    end: int | None = None,
    limit: int = 500,
    descending: bool = False,
) -> list[Candle]:
    """Closed candles of one stream with ``start <= open_time < end``, oldest first.

    ``descending`` takes the newest ``limit`` instead (still returned oldest first).
    """
    q = select(candles).where(candles.c.symbol == symbol, candles.c.interval == interval)
    if start is not None:
        q = q.where(candles.c.open_time >= start)
    if end is not None:
        q = q.where(candles.c.open_time < end)
    order = candles.c.open_time.desc() if descending else candles.c.open_time.asc()
    with engine.connect() as conn:
        rows = conn.execute(q.order_by(order).limit(limit)).all()
    out = [row_to_candle(r) for r in rows]
    return out[::-1] if descending else out


def count_candles(engine: Engine) -> int:
    from sqlalchemy import func

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(candles)).scalar_one())


def table_digest(engine: Engine) -> list[tuple]:
    """Every candle row in key order (for tests that compare whole tables)."""
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(candles).order_by(candles.c.symbol, candles.c.interval, candles.c.open_time)
            ).all()
        ]


class StoreWriter:
    """Writes closed candles on a background thread, in batches, retrying with backoff.

    ``put`` never blocks and never touches the database. During an outage the
    candles wait in a bounded buffer (``capacity``: at 100 closed candles per
    second that is over an hour) and are written when the database returns.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        capacity: int = 500_000,
        batch: int = 5_000,
        interval_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.engine = engine
        self._buffer: deque[Candle] = deque()
        self.capacity = capacity
        self.batch = batch
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self.healthy = True
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def put(self, items: Iterable[Candle]) -> None:
        with self._lock:
            for c in items:
                if c.closed:
                    if len(self._buffer) >= self.capacity:
                        self._buffer.popleft()
                        self.dropped += 1
                    self._buffer.append(c)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def _take(self) -> list[Candle]:
        with self._lock:
            n = min(self.batch, len(self._buffer))
            return [self._buffer.popleft() for _ in range(n)]

    def _give_back(self, items: list[Candle]) -> None:
        with self._lock:
            self._buffer.extendleft(reversed(items))

    def _run(self) -> None:
        backoff = 0.0
        while True:
            self._wake.wait(backoff or self.interval_s)
            self._wake.clear()
            stopping = self._stop.is_set()
            while self._buffer:
                items = self._take()
                try:
                    upsert_candles(self.engine, items)
                except SQLAlchemyError as exc:
                    self._give_back(items)
                    self.errors += 1
                    self.last_error = str(exc).splitlines()[0][:200]
                    if self.healthy:
                        log.warning("database write failed (%s); %d candles kept", self.last_error, self.pending)
                    self.healthy = False
                    backoff = min(self.max_backoff_s, max(0.2, backoff * 2))
                    break
                else:
                    if not self.healthy:
                        log.info("database is back")
                    self.healthy = True
                    self.last_error = None
                    backoff = 0.0
                    self.written += len(items)
            if stopping and (not self._buffer or not self.healthy):
                return

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the buffer is written (or ``timeout``); True when it is empty."""
        deadline = time.monotonic() + timeout
        while self._buffer and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)
        return not self._buffer

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
