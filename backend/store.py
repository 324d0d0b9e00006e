"""SQL storage: closed candles (history) and alert rules/events. SQLAlchemy 2.

SQLite by default, PostgreSQL by ``CANDLES_DATABASE_URL`` (psycopg 3). Candle
writes are batched idempotent upserts on (symbol, interval, open_time), so a
replay or a retry never duplicates. The ingest writes through
:class:`backend.sinks.sql.SqlSink`, off the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    make_url,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from backend.dbtimeouts import DEFAULT_TIMEOUTS, DbTimeouts, connect_with_deadline, engine_options, sqlite_pragmas
from backend.models import Candle

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


def make_engine(url: str, *, timeouts: DbTimeouts = DEFAULT_TIMEOUTS) -> Engine:
    """An engine on a database at the newest schema (migrated on the way); SQLite in WAL mode.

    Every call has a deadline (``timeouts``, see :mod:`backend.dbtimeouts`): a hung database is an error
    within seconds, which the callers report as the database being down.
    """
    url = normalize_url(url)
    in_memory = url.startswith("sqlite://") and (url in {"sqlite://", "sqlite:///"} or ":memory:" in url)
    if url.startswith("sqlite:///") and not in_memory:
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    dialect = make_url(url).get_backend_name()
    engine = create_engine(url, pool_pre_ping=True, **engine_options(timeouts, pooled=not in_memory))
    if dialect == "postgresql":

        @event.listens_for(engine, "do_connect")
        def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
            return connect_with_deadline(timeouts, cargs, cparams)

    if dialect == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            for pragma in sqlite_pragmas(timeouts):
                cur.execute(pragma)
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


def check_connection(engine: Engine) -> None:
    """A trivial query (``SELECT 1``): raises when the database cannot answer."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


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
