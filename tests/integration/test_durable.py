"""Nothing lost when the ingest stops, crashes or restarts: each fault injected for real.

The ingest runs as ``python -m backend ingest`` in a subprocess (exactly as a user runs it), on
this session's Redis and a SQLite file of its own (or PostgreSQL behind a TCP proxy, when
``CANDLES_TEST_DATABASE_URL`` is set); it is stopped with SIGTERM or SIGKILL. The tests wait
for states they can see (Redis keys, SQL rows, the process's exit), never for a fixed time.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from sqlalchemy import make_url

from backend.cache import CacheKeys
from backend.config import Settings
from backend.models import decode_message
from backend.store import count_candles, make_engine, query_candles, table_digest
from tests.conftest import ROOT, SAMPLES
from tests.proxy import TcpProxy
from tests.stack import clean_environ, isolated_settings, settings_env

pytestmark = [pytest.mark.integration, pytest.mark.resilience, pytest.mark.slow]
XRP_TRADES = SAMPLES / "binance_xrpeth_2019" / "XRP_ETH-aggtrades.json.gz"
WAIT_S = 90  # generous: the machine is shared; the tests wait for events, this only bounds a failure
STREAM_FIELDS = ("interval", "open_time", "seq", "open", "high", "low", "close", "volume", "quote_volume", "trades")


@dataclass
class Ingest:
    """One ``python -m backend ingest`` process and its log."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self) -> int:
        try:
            return self.process.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the ingest did not exit:\n{self.log()[-3000:]}") from None


def start_ingest(settings: Settings, log_path: Path, *args: str) -> Ingest:
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "backend", "ingest", *args],
            cwd=ROOT,
            env=clean_environ(settings_env(settings)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Ingest(process, log_path)


def wait_for(what: str, check: Callable[[], Any], ingest: Ingest | None = None) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if ingest is not None and ingest.process.poll() is not None:
            raise AssertionError(f"the ingest exited ({ingest.process.returncode}) before {what}:\n{ingest.log()}")
        if value := check():
            return value
        time.sleep(0.02)
    raise AssertionError(f"no {what} within {WAIT_S} s" + (f":\n{ingest.log()[-3000:]}" if ingest else ""))


def stored_state(client: redis.Redis, settings: Settings, symbol: str) -> dict[str, dict[str, Any]] | None:
    """The ingest's stored state of ``symbol`` (``{prefix}:resume``), by interval, read as plain MessagePack."""
    raw = client.hget(CacheKeys(settings.redis_prefix).resume, symbol)
    if raw is None:
        return None
    doc = msgspec.msgpack.decode(raw)
    return {s[0]: dict(zip(STREAM_FIELDS, s, strict=False)) | {"last_trade": doc["last_trade"]} for s in doc["streams"]}


def ingest_stats(client: redis.Redis, settings: Settings) -> dict[str, Any]:
    raw = client.hgetall(CacheKeys(settings.redis_prefix).stats("ingest"))
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def recent_seqs(client: redis.Redis, settings: Settings, symbol: str, interval: str) -> list[int]:
    """``seq`` of the cached closed candles, in open_time order."""
    members = client.zrange(CacheKeys(settings.redis_prefix).recent(symbol, interval), 0, -1)
    return [decode_message(m).seq for m in members]  # type: ignore[union-attr]


def assert_same_candles(got: list[tuple], want: list[tuple]) -> None:
    """Candle for candle, every field to the last bit: the sums too, since each candle's trades are added one by
    one in arrival order, however a restart or a fault cut the batches."""
    assert len(got) == len(want)
    assert [g for g, w in zip(got, want, strict=True) if g != w] == []


def ohlcvt(c: Any) -> tuple:
    return (c.open_time, c.open, c.high, c.low, c.close, round(c.volume, 9), c.trades)


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> list[tuple]:
    """The SQL table after one undisturbed replay of the XRP/ETH trades (1m, 5m)."""
    tmp = tmp_path_factory.mktemp("undisturbed")
    settings = isolated_settings(redis_url, tmp, intervals=("1m", "5m"))
    ingest = start_ingest(settings, tmp / "ingest.log", "--source", f"replay:{XRP_TRADES}", "--speed", "0")
    assert ingest.wait() == 0, ingest.log()
    engine = make_engine(settings.effective_database_url())
    rows = table_digest(engine)
    engine.dispose()
    assert len(rows) == 3559 + 711  # every closed kline of Binance's files (the last one of each is open)
    return rows


# ---------------------------------------------------------------- database outage


@dataclass
class Outage:
    """A database the ingest writes to, and a way to take it away for real and bring it back."""

    url: str
    cut: Callable[[], None]
    restore: Callable[[], None]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    """SQLite: another process holds its write lock (writes fail with "database is locked");
    PostgreSQL: a TCP proxy in front of it refuses connections and drops the open ones."""
    if request.param == "sqlite":
        path = tmp_path / "outage.sqlite3"
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        yield Outage(
            f"sqlite:///{path}", lambda: blocker.execute("BEGIN EXCLUSIVE"), lambda: blocker.execute("ROLLBACK")
        )
        blocker.close()
        return
    url = os.environ.get("CANDLES_TEST_DATABASE_URL")
    if not url:
        pytest.skip("PostgreSQL not configured: set CANDLES_TEST_DATABASE_URL to run this against it")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM candles")
    engine.dispose()
    target = make_url(url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    yield Outage(
        target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy.cut, proxy.restore
    )
    proxy.cut()


def test_an_ingest_stopped_during_a_database_outage_keeps_its_candles_and_writes_them_on_the_next_start(
    outage, undisturbed, redis_url, redis_client, tmp_path
):
    settings = isolated_settings(redis_url, tmp_path, intervals=("1m", "5m"), database_url=outage.url)
    replay = ("--source", f"replay:{XRP_TRADES}", "--drain-timeout", "1")
    engine = make_engine(outage.url)
    first = start_ingest(settings, tmp_path / "ingest.log", *replay, "--speed", "5000")
    wait_for("candles in SQL", lambda: count_candles(engine) >= 50, first)
    outage.cut()
    wait_for("the ingest to see the outage", lambda: ingest_stats(redis_client, settings).get("db_ok") is False, first)
    wait_for("closed candles waiting", lambda: ingest_stats(redis_client, settings).get("db_pending", 0) > 0, first)

    first.process.send_signal(signal.SIGTERM)
    assert first.wait() == 1  # the exit status says candles are pending
    log = first.log()
    spool = next((settings.data_dir / "spool").glob("candles-*.jsonl"))
    kept = len(spool.read_bytes().splitlines())
    assert kept > 0 and f"not written to the database after 1.0 s: kept in {spool}" in log, log

    outage.restore()
    # the first start needed a short drain to exit during the outage; this one must wait for the database (the
    # spool and a whole replay, about 4,000 candles, are written after the replay ends, slowly on a loaded machine)
    second = start_ingest(settings, tmp_path / "ingest.log", *replay, "--speed", "0", "--drain-timeout", "60")
    assert second.wait() == 0, second.log()
    assert "closed candles left by the previous run" in second.log()
    assert_same_candles(table_digest(engine), undisturbed)
    assert not spool.exists()  # written, and nothing left behind
    engine.dispose()


# ---------------------------------------------------------------- SIGKILL mid-minute


def test_a_replay_killed_mid_minute_and_restarted_gives_the_undisturbed_candles_and_seq_continues(
    undisturbed, redis_url, redis_client, tmp_path
):
    settings = isolated_settings(redis_url, tmp_path, intervals=("1m", "5m"))
    replay = ("--source", f"replay:{XRP_TRADES}")
    first = start_ingest(settings, tmp_path / "ingest.log", *replay, "--speed", "2000")

    def forming_with_trades() -> dict[str, Any] | None:
        state = stored_state(redis_client, settings, "XRPETH")
        return (
            state
            if state and state["1m"]["trades"] >= 2 and len(recent_seqs(redis_client, settings, "XRPETH", "1m")) >= 3
            else None
        )

    wait_for("a forming 1m candle of several trades", forming_with_trades, first)
    first.process.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    at_kill = stored_state(redis_client, settings, "XRPETH")["1m"]  # nothing writes after the kill

    second = start_ingest(settings, tmp_path / "ingest.log", *replay, "--speed", "0")
    assert second.wait() == 0, second.log()
    assert "resumed 1 symbols from Redis" in second.log()

    engine = make_engine(settings.effective_database_url())
    assert_same_candles(table_digest(engine), undisturbed)  # the killed minute included, and no hole
    (minute,) = query_candles(engine, "XRPETH", "1m", start=at_kill["open_time"], end=at_kill["open_time"] + 1)
    want = next(r for r in undisturbed if r[1] == "1m" and r[2] == at_kill["open_time"])
    assert (minute.open_time, minute.open, minute.high, minute.low, minute.close, minute.trades) == (
        want[2],
        want[4],
        want[5],
        want[6],
        want[7],
        want[10],
    )
    assert minute.volume == want[8]
    assert minute.trades >= at_kill["trades"]
    seqs = recent_seqs(redis_client, settings, "XRPETH", "1m")
    assert seqs == sorted(set(seqs)), seqs  # no drop back to 1, no repeat
    assert max(seqs) > at_kill["seq"]
    stats = ingest_stats(redis_client, settings)
    assert stats["trades_already_counted"] > 0 and stats["late_trades"] == {}
    engine.dispose()


def test_the_simulator_killed_mid_minute_continues_its_minute_and_its_price_and_keeps_history(
    redis_url, redis_client, tmp_path
):
    settings = isolated_settings(redis_url, tmp_path, intervals=("1s", "1m"), symbols=("BTCUSDT",))
    sim = ("--source", "simulator", "--seed", "11", "--history", "20")
    first = start_ingest(settings, tmp_path / "ingest.log", *sim)

    def mid_minute() -> dict[str, Any] | None:
        state = stored_state(redis_client, settings, "BTCUSDT")
        if not state or state["1m"]["trades"] < 20 or len(recent_seqs(redis_client, settings, "BTCUSDT", "1s")) < 5:
            return None
        into_minute_ms = time.time() * 1000 - state["1m"]["open_time"]
        # late in the minute, so its close (which the test waits for) is near; 12 s left for the restart to land in it
        return state if 3_000 <= into_minute_ms <= 48_000 else None

    wait_for("a minute under way", mid_minute, first)
    first.process.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    at_kill = stored_state(redis_client, settings, "BTCUSDT")
    minute_start = at_kill["1m"]["open_time"]
    cached_1s = [
        decode_message(m) for m in redis_client.zrange(CacheKeys(settings.redis_prefix).recent("BTCUSDT", "1s"), 0, -1)
    ]

    latest = decode_message(redis_client.get(CacheKeys(settings.redis_prefix).latest("BTCUSDT", "1m")))
    updates = redis_client.pubsub(ignore_subscribe_messages=True)
    updates.subscribe(settings.updates_channel)
    second = start_ingest(settings, tmp_path / "ingest.log", *sim)

    def first_1m_update() -> Any:
        message = updates.get_message(timeout=0.1)
        if message is None:
            return None
        return next((c for c in json.loads(message["data"]) if c["interval"] == "1m"), None)

    first_1m = wait_for("the restarted ingest's first 1m update", first_1m_update, second)
    updates.close()
    assert first_1m["open_time"] == minute_start
    assert first_1m["seq"] == max(at_kill["1m"]["seq"], latest.seq) + 1  # seq continues: no drop back to 1
    engine = make_engine(settings.effective_database_url())
    minute = wait_for(
        "the killed minute closed in SQL",
        lambda: query_candles(engine, "BTCUSDT", "1m", start=minute_start, end=minute_start + 1),
        second,
    )[0]
    second.process.send_signal(signal.SIGTERM)
    assert second.wait() == 0, second.log()

    # the restored candle went on: same first trade, every trade counted at the kill still in it
    assert minute.open == at_kill["1m"]["open"] and minute.trades > at_kill["1m"]["trades"]
    assert minute.high >= at_kill["1m"]["high"] and minute.low <= at_kill["1m"]["low"]
    # and it is what an undisturbed run gives: the roll-up of its 1s candles, which have no hole
    seconds = query_candles(engine, "BTCUSDT", "1s", start=minute_start, end=minute_start + 60_000, limit=100)
    times = [c.open_time for c in seconds]
    assert times == list(range(times[0], minute_start + 60_000, 1000))
    assert (minute.open, minute.close) == (seconds[0].open, seconds[-1].close)
    assert minute.high == max(c.high for c in seconds) and minute.low == min(c.low for c in seconds)
    assert minute.trades == sum(c.trades for c in seconds)
    assert minute.volume == pytest.approx(sum(c.volume for c in seconds), rel=1e-9)
    # history before the kill is not rewritten by the restart's recent past
    before = [c for c in cached_1s if c.open_time < at_kill["1s"]["open_time"]]
    stored = {c.open_time: c for c in query_candles(engine, "BTCUSDT", "1s", start=before[0].open_time, limit=1000)}
    assert [ohlcvt(stored[c.open_time]) for c in before] == [ohlcvt(c) for c in before]
    # seq continues: the closed 1m candle comes after every update published before the kill
    (closed_1m,) = [
        decode_message(m)
        for m in redis_client.zrangebyscore(
            CacheKeys(settings.redis_prefix).recent("BTCUSDT", "1m"), minute_start, minute_start
        )
    ]
    assert closed_1m.seq > at_kill["1m"]["seq"]
    engine.dispose()


def test_the_simulator_restarted_on_an_empty_redis_goes_on_from_sql_without_rewriting_it(
    redis_url, redis_client, tmp_path
):
    settings = isolated_settings(redis_url, tmp_path, intervals=("1s", "1m"), symbols=("ETHUSDT",))
    sim = ("--source", "simulator", "--seed", "5", "--history", "30")
    engine = make_engine(settings.effective_database_url())
    first = start_ingest(settings, tmp_path / "ingest.log", *sim)
    wait_for("30 s of history in SQL", lambda: count_candles(engine) >= 30, first)
    first.process.send_signal(signal.SIGTERM)
    assert first.wait() == 0, first.log()
    stored = table_digest(engine)
    redis_client.delete(CacheKeys(settings.redis_prefix).resume)  # as an embedded server would start: empty

    second = start_ingest(settings, tmp_path / "ingest.log", *sim)
    newest = max(r[2] for r in stored if r[1] == "1s")
    wait_for(
        "new candles after the restart",
        lambda: query_candles(engine, "ETHUSDT", "1s", start=newest + 5_000, limit=1),
        second,
    )
    second.process.send_signal(signal.SIGTERM)
    assert second.wait() == 0, second.log()
    after = {(r[1], r[2]): r for r in table_digest(engine)}
    assert [after[(r[1], r[2])] for r in stored if r[1] == "1s"] == [r for r in stored if r[1] == "1s"]
    assert "1 symbols go on from their newest candles in SQL" in second.log()
    engine.dispose()
