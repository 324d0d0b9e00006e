"""SQL storage on SQLite and PostgreSQL: idempotent upserts, history queries, outages."""

from __future__ import annotations

import os
import sqlite3
import time
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError

from backend.aggregate import Aggregator
from backend.dbtimeouts import DbTimeouts
from backend.models import Candle, Trade, TradeBatch
from backend.sinks.sql import SqlSink
from backend.store import (
    check_connection,
    count_candles,
    make_engine,
    query_candles,
    table_digest,
    upsert_candles,
)
from tests.examples import examples
from tests.proxy import TcpProxy

pytestmark = pytest.mark.integration
T0 = 1_732_665_600_000


def closed_candles(rows: list[tuple[int, int, float]], intervals=("1s", "1m")) -> list[Candle]:
    agg = Aggregator(intervals)
    agg.add(
        TradeBatch.from_trades(
            [Trade(("BTCUSDT", "ETHUSDT")[s], p, 1.0, T0 + t, i, "buy") for i, (s, t, p) in enumerate(rows)]
        )
    )
    return agg.take_closed()


rows_strategy = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 5 * 60_000), st.floats(1, 100, allow_nan=False)),
    min_size=1,
    max_size=80,
)


@settings(max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy)
def test_replaying_the_same_trades_twice_leaves_the_table_unchanged(db_engine, rows):
    with db_engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM candles")
    upsert_candles(db_engine, closed_candles(rows))
    once = table_digest(db_engine)
    upsert_candles(db_engine, closed_candles(rows))
    assert table_digest(db_engine) == once


def test_history_queries_by_range_and_newest_first(db_engine):
    candles = closed_candles([(0, i * 1_000, 10.0 + i) for i in range(120)], intervals=("1s",))
    upsert_candles(db_engine, candles)
    btc = [c for c in candles if c.symbol == "BTCUSDT"]
    page = query_candles(db_engine, "BTCUSDT", "1s", start=T0 + 10_000, end=T0 + 20_000)
    assert [c.open_time for c in page] == [T0 + i * 1_000 for i in range(10, 20)]
    newest = query_candles(db_engine, "BTCUSDT", "1s", limit=5, descending=True)
    assert [c.open_time for c in newest] == [c.open_time for c in btc[-5:]]
    assert newest[-1].close == btc[-1].close and newest[-1].closed
    assert query_candles(db_engine, "NOPEUSDT", "1s") == []


def test_the_writer_batches_and_only_stores_closed_candles(db_engine):
    writer = SqlSink(db_engine, interval_s=0.05)
    agg = Aggregator(["1s"], emit_ms=0)
    agg.add(TradeBatch.from_trades([Trade("BTCUSDT", 1.0 + i, 1.0, T0 + i * 1_000, i) for i in range(30)]))
    writer.put(agg.drain(0))  # 29 closed + 1 forming
    assert writer.flush()
    writer.close()
    assert count_candles(db_engine) == 29
    assert writer.written == 29 and writer.healthy


def test_sqlite_locked_by_another_writer_delays_but_loses_nothing(tmp_path):
    path = tmp_path / "locked.sqlite3"
    engine = make_engine(f"sqlite:///{path}", timeouts=DbTimeouts(statement_s=0.05))
    writer = SqlSink(engine, interval_s=0.05, max_backoff_s=0.2)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    candles = closed_candles([(0, i * 1_000, 5.0) for i in range(50)], intervals=("1s",))
    writer.put(candles)
    deadline = time.monotonic() + 10
    while writer.healthy and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not writer.healthy and writer.pending == len(candles) and writer.errors >= 1
    blocker.execute("ROLLBACK")
    blocker.close()
    assert writer.flush(timeout=10)
    writer.close()
    assert count_candles(engine) == len(candles) and writer.healthy and writer.dropped == 0


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_outage_delays_but_loses_nothing():
    url = os.environ.get("CANDLES_TEST_DATABASE_URL")
    if not url:
        pytest.skip("PostgreSQL not configured: set CANDLES_TEST_DATABASE_URL to run this against it")
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxied = url.replace(parts.netloc, f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}")
    engine = make_engine(proxied)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM candles")
    writer = SqlSink(engine, interval_s=0.05, max_backoff_s=0.5)
    candles = closed_candles([(s, i * 1_000, 5.0 + i) for i in range(200) for s in (0, 1)], intervals=("1s",))
    writer.put(candles[:100])
    assert writer.flush()
    proxy.cut()
    writer.put(candles[100:])
    deadline = time.monotonic() + 15
    while writer.healthy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not writer.healthy and writer.pending > 0
    failed = writer.errors
    while writer.errors < failed + 3 and time.monotonic() < deadline + 15:  # the outage goes on: retries fail
        time.sleep(0.05)
    assert writer.errors >= failed + 3
    proxy.restore()
    assert writer.flush(timeout=30)
    writer.close()
    assert count_candles(engine) == len(candles) and writer.dropped == 0
    proxy.cut()
    engine.dispose()


@pytest.mark.postgres
def test_postgres_calls_have_deadlines_so_a_hung_server_is_an_error_not_a_hang():
    """The server's statement timeout, the URL's own options kept, and the client's deadlines on a hung server."""
    url = os.environ.get("CANDLES_TEST_DATABASE_URL")
    if not url:
        pytest.skip("PostgreSQL not configured: set CANDLES_TEST_DATABASE_URL to run this against it")
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxied = url.replace(parts.netloc, f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}")
    engine = make_engine(
        proxied + "?options=-capplication_name%3Dcandles-deadlines",
        timeouts=DbTimeouts(connect_s=2, statement_s=1.5, pool_s=1),
    )
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1500ms"
        assert conn.exec_driver_sql("SHOW application_name").scalar() == "candles-deadlines"
        with pytest.raises(OperationalError, match="canceling statement due to statement timeout"):
            conn.exec_driver_sql("SELECT pg_sleep(5)")
    with engine.connect() as conn:
        proxy.hang()  # connections stay open, nothing comes back: without deadlines these calls never return
        with pytest.raises(OperationalError, match=r"no answer from the database within 3\.5 s"):
            conn.exec_driver_sql("SELECT 1")  # an open connection: the client's deadline (statement + 2 s)
    with pytest.raises(OperationalError, match="connection timeout expired"):
        check_connection(engine)  # a new connection: the connect timeout
    proxy.resume()


def candle(open_time: int, close: float, *, symbol: str = "BTCUSDT", volume: float = 1.0) -> Candle:
    return Candle(
        symbol=symbol, interval="1m", open_time=open_time, close_time=open_time + 59_999, open=1.0,
        high=max(close, 1.0), low=min(close, 1.0), close=close, volume=volume, quote_volume=volume * close, trades=3,
        taker_buy_volume=0.5, taker_buy_quote_volume=0.5 * close, closed=True, seq=1, event_time=open_time + 1_000,
        emitted_at=open_time + 2_000,
    )  # fmt: skip


def test_an_upsert_with_changed_data_replaces_every_value_column(db_engine):
    """Second write wins: a corrected candle replaces the stored one, field by field; other keys are untouched."""
    with db_engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM candles")
    assert (
        upsert_candles(db_engine, [candle(T0, 2.0), candle(T0 + 60_000, 3.0), candle(T0, 4.0, symbol="ETHUSDT")]) == 3
    )
    corrected = Candle(
        symbol="BTCUSDT", interval="1m", open_time=T0, close_time=T0 + 59_999, open=1.5, high=7.0, low=0.5, close=6.0,
        volume=9.0, quote_volume=54.0, trades=11, taker_buy_volume=4.0, taker_buy_quote_volume=24.0, closed=True,
        seq=2, event_time=T0 + 59_000, emitted_at=T0 + 61_000,
    )  # fmt: skip
    assert upsert_candles(db_engine, [corrected]) == 1
    assert count_candles(db_engine) == 3
    (row,) = query_candles(db_engine, "BTCUSDT", "1m", start=T0, end=T0 + 1)
    assert (row.open, row.high, row.low, row.close, row.volume, row.quote_volume, row.trades) == (
        1.5, 7.0, 0.5, 6.0, 9.0, 54.0, 11,
    )  # fmt: skip
    assert (row.taker_buy_volume, row.taker_buy_quote_volume, row.event_time) == (4.0, 24.0, T0 + 59_000)
    (untouched,) = query_candles(db_engine, "BTCUSDT", "1m", start=T0 + 60_000)
    assert untouched.close == 3.0
    assert [c.close for c in query_candles(db_engine, "ETHUSDT", "1m")] == [4.0]


def test_within_one_batch_the_last_version_of_a_candle_wins(db_engine):
    with db_engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM candles")
    assert upsert_candles(db_engine, [candle(T0, 2.0), candle(T0, 5.0, volume=2.0)]) == 1
    assert [(c.close, c.volume) for c in query_candles(db_engine, "BTCUSDT", "1m")] == [(5.0, 2.0)]


def test_a_range_is_start_inclusive_end_exclusive_and_limits_count_from_the_right_end(db_engine):
    with db_engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM candles")
    upsert_candles(db_engine, [candle(T0 + i * 60_000, 10.0 + i) for i in range(6)])
    upsert_candles(db_engine, [candle(T0, 99.0, symbol="ETHUSDT")])

    def opens(**kw):
        return [(c.open_time - T0) // 60_000 for c in query_candles(db_engine, "BTCUSDT", "1m", **kw)]

    assert opens() == [0, 1, 2, 3, 4, 5]
    assert opens(start=T0 + 60_000, end=T0 + 180_000) == [1, 2]  # [start, end)
    assert opens(start=T0 + 60_001) == [2, 3, 4, 5]
    assert opens(end=T0 + 60_001) == [0, 1]
    assert opens(start=T0 + 120_000, end=T0 + 120_000) == []
    assert opens(limit=2) == [0, 1]
    assert opens(limit=2, descending=True) == [4, 5]  # the newest two, oldest first
    assert opens(end=T0 + 240_000, limit=3, descending=True) == [1, 2, 3]
    assert query_candles(db_engine, "BTCUSDT", "5m") == []
    (row,) = query_candles(db_engine, "ETHUSDT", "1m")
    assert (row.symbol, row.interval, row.close, row.closed, row.seq) == ("ETHUSDT", "1m", 99.0, True, 0)
    assert count_candles(db_engine) == 7


def test_urls_and_sqlite_settings(tmp_path):
    from backend.store import check_connection, normalize_url

    assert normalize_url("postgresql://u@h:5432/db") == "postgresql+psycopg://u@h:5432/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.sqlite3") == "sqlite:///x.sqlite3"
    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'dir' / 'c.sqlite3'}", timeouts=DbTimeouts(statement_s=1.234))
    with engine.connect() as conn:
        names = ("journal_mode", "synchronous", "busy_timeout")
        pragmas = [conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in names]
    assert pragmas == ["wal", 1, 1234]  # synchronous=NORMAL is 1
    check_connection(engine)
    engine.dispose()


def test_nothing_to_write_writes_nothing_and_a_page_is_500_by_default(db_engine):
    with db_engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM candles")
    assert upsert_candles(db_engine, []) == 0
    assert upsert_candles(db_engine, [candle(T0 + i * 60_000, 1.0) for i in range(501)]) == 501
    page = query_candles(db_engine, "BTCUSDT", "1m")
    assert (len(page), page[0].open_time, page[-1].open_time) == (500, T0, T0 + 499 * 60_000)
