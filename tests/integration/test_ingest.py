"""The ingest service end to end: real sources into a real Redis and SQL database."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis

from backend.cache import CacheKeys
from backend.ingest import IngestService
from backend.models import decode_message
from backend.offline import aggregate_file
from backend.sinks import RedisSink, default_sinks
from backend.sources import open_source
from backend.store import make_engine, query_candles
from tests.conftest import ROOT, SAMPLES

pytestmark = pytest.mark.integration
XRP_TRADES = SAMPLES / "binance_xrpeth_2019" / "XRP_ETH-aggtrades.json.gz"


def test_a_replay_lands_in_redis_and_sql_exactly_as_offline_aggregation(redis_client, settings, db_url):
    settings = settings.model_copy(update=dict(intervals=("1m", "5m"), source=f"replay:{XRP_TRADES}", speed=0.0))
    source = open_source(settings.source, symbols=settings.symbols, speed=0.0, seed=None)
    engine = make_engine(db_url)
    service = IngestService(settings, source, redis_client, default_sinks(settings, redis_client, engine))
    service.run(threading.Event())
    service.close()

    offline, _, _ = aggregate_file(XRP_TRADES, ("1m", "5m"))
    for interval in ("1m", "5m"):
        want = [c for c in offline if c.interval == interval and c.closed]
        got = query_candles(engine, "XRPETH", interval, limit=10_000)
        assert [(c.open_time, c.open, c.high, c.low, c.close, c.volume, c.trades) for c in got] == [
            (c.open_time, c.open, c.high, c.low, c.close, c.volume, c.trades) for c in want
        ]
    keys = CacheKeys(settings.redis_prefix)
    latest = decode_message(redis_client.get(keys.latest("XRPETH", "1m")))
    assert latest.closed is False and latest.open_time == [c for c in offline if c.interval == "1m"][-1].open_time
    stats = {k.decode(): json.loads(v) for k, v in redis_client.hgetall(keys.stats("ingest")).items()}
    assert stats["trades_in"] == 12477 and stats["db_ok"] is True and stats["redis_ok"] is True
    engine.dispose()


@pytest.mark.slow
def test_the_ingest_command_runs_the_simulator_until_interrupted(redis_url, settings, tmp_path):
    env = dict(
        os.environ,
        CANDLES_REDIS_URL=redis_url,
        CANDLES_DATABASE_URL=f"sqlite:///{tmp_path / 'ingest.sqlite3'}",
        CANDLES_REDIS_PREFIX=settings.redis_prefix,
        CANDLES_UPDATES_CHANNEL=settings.updates_channel,
        CANDLES_SYMBOLS="BTCUSDT,ETHUSDT",
        CANDLES_INTERVALS="1s,1m",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend", "ingest", "--source", "simulator", "--seed", "7"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = redis.Redis.from_url(redis_url)
    keys = CacheKeys(settings.redis_prefix)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and client.zcard(keys.recent("BTCUSDT", "1s")) < 3:
            time.sleep(0.2)
        assert client.zcard(keys.recent("BTCUSDT", "1s")) >= 3
        assert decode_message(client.get(keys.latest("ETHUSDT", "1m"))).symbol == "ETHUSDT"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "ingest finished" in out
    engine = make_engine(env["CANDLES_DATABASE_URL"])
    stored = query_candles(engine, "BTCUSDT", "1s", limit=10_000)
    cached = [decode_message(m) for m in client.zrange(keys.recent("BTCUSDT", "1s"), 0, -1)]
    assert {c.open_time for c in cached} <= {c.open_time for c in stored}  # the shutdown flushed SQL
    engine.dispose()
    client.close()


def test_the_simulator_opens_on_its_recent_past_then_goes_live(redis_client, settings):
    """Charts open on hours of candles: history closes on event time, then the clock takes over."""
    from backend.models import now_ms

    settings = settings.model_copy(update=dict(symbols=("BTCUSDT",), intervals=("1s", "1m"), sim_history_s=600.0))
    source = open_source("simulator", symbols=settings.symbols, seed=3, history_s=settings.sim_history_s)
    assert not source.live
    service = IngestService(settings, source, redis_client, [RedisSink.from_settings(settings, redis_client)])
    stop = threading.Event()
    started = now_ms()

    keys = CacheKeys(settings.redis_prefix)
    live_at: list[int] = []

    def newest_closed_second() -> int:
        last = redis_client.zrange(keys.recent("BTCUSDT", "1s"), -1, -1)
        return decode_message(last[0]).close_time if last else 0

    def stop_when_live() -> None:
        """Stop once a 1s candle has closed after the source went live (the live market's first closes)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (source.live and service.aggregator.trades_in):
            time.sleep(0.01)
        live_at.append(now_ms())
        while time.monotonic() < deadline and newest_closed_second() < live_at[0]:
            time.sleep(0.01)
        stop.set()

    threading.Thread(target=stop_when_live, daemon=True).start()
    service.run(stop)
    assert source.live
    assert service.aggregator.live  # the aggregator followed the source: candles now also close on the clock
    minutes = [decode_message(m) for m in redis_client.zrange(keys.recent("BTCUSDT", "1m"), 0, -1)]
    assert 9 <= len(minutes) <= 11  # ten minutes of the past, closed by the trades that followed
    assert minutes[0].open_time >= started - 600_000 - 60_000
    assert all(b.open_time - a.open_time == 60_000 for a, b in itertools.pairwise(minutes))
    assert newest_closed_second() >= live_at[0]  # closed by the live market, after the history ended
    assert service.aggregator.late == {}


class CountingSink:
    """A sink of a test: counts what it is given (and the size of each list) and reports it like any sink."""

    def __init__(self) -> None:
        self.candles = 0
        self.sizes: list[int] = []
        self.closed = False

    def put(self, candles) -> None:
        self.candles += len(candles)
        self.sizes.append(len(candles))

    def close(self, timeout: float = 10.0) -> int:
        self.closed = True
        return 0

    def stats(self) -> dict[str, object]:
        return {"counted": self.candles}


def test_every_sink_gets_every_flush_and_reports_into_the_stats_hash(redis_client, settings):
    settings = settings.model_copy(update=dict(intervals=("1m",), source=f"replay:{XRP_TRADES}", speed=0.0))
    source = open_source(settings.source, symbols=None, speed=0.0, seed=None)
    counting = CountingSink()
    service = IngestService(settings, source, redis_client, [RedisSink.from_settings(settings, redis_client), counting])
    service.run(threading.Event())
    service.close()
    keys = CacheKeys(settings.redis_prefix)
    stats = {k.decode(): json.loads(v) for k, v in redis_client.hgetall(keys.stats("ingest")).items()}
    assert counting.closed and counting.candles == service.candles_out > 0
    assert stats["counted"] == counting.candles and stats["redis_ok"] is True and "db_ok" not in stats


def test_a_day_without_trades_reaches_the_sinks_in_bounded_lists(redis_client, settings, tmp_path):
    """86,400 flat 1s candles close at once: the sinks get them 65,536 at most at a time, all of them, in order."""
    day_ms = 86_400_000
    t0 = 1_732_665_600_000
    trades = tmp_path / "gap.csv"
    trades.write_text(f"ts_ms,symbol,price,qty,side,trade_id\n{t0 + 5},BTCUSDT,10.0,1.0,buy,1\n"
                      f"{t0 + day_ms + 5},BTCUSDT,11.0,1.0,sell,2\n")  # fmt: skip
    settings = settings.model_copy(update=dict(intervals=("1s",), source=f"replay:{trades}", speed=0.0))
    source = open_source(settings.source, symbols=None, speed=0.0, seed=None)
    sizes = CountingSink()
    service = IngestService(settings, source, redis_client, [RedisSink.from_settings(settings, redis_client), sizes])
    service.run(threading.Event())
    service.close()
    assert sizes.candles == 86_400 + 1  # the traded second, 86,399 flat ones, the new second (forming)
    assert max(sizes.sizes) == 65_536
    keys = CacheKeys(settings.redis_prefix)
    latest = decode_message(redis_client.get(keys.latest("BTCUSDT", "1s")))
    assert (latest.open_time, latest.seq, latest.close) == (t0 + day_ms, 86_401, 11.0)
    recent = [decode_message(m) for m in redis_client.zrange(keys.recent("BTCUSDT", "1s"), -2, -1)]
    assert [(c.open_time, c.seq, c.close, c.trades) for c in recent] == [
        (t0 + day_ms - 2_000, 86_399, 10.0, 0),
        (t0 + day_ms - 1_000, 86_400, 10.0, 0),
    ]
