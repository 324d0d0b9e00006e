"""The Flink job against the in-process aggregator, and its candles through Redis, SQL and a relay client.

Runs in ``.venv-flink`` (``make test-flink``; ``.ci/run`` does): one job run (one JVM start) on the Binance
sample, checked against ``python -m backend aggregate`` on the same trades, against the cache and the
``candles`` table, and against what a WebSocket client of the relay (which runs in ``.venv``) receives.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
import websocket

pytest.importorskip(
    "pyflink", reason="PyFlink is not in this venv: `make flink-venv` builds .venv-flink, `make test-flink` runs this"
)

from backend import processes
from backend.cache import CacheKeys
from backend.config import INTERVALS_MS, Settings, parse_intervals
from backend.flink.job import JavaMissing, java_version
from backend.offline import aggregate_command
from backend.store import make_engine, query_candles
from tests.conftest import ROOT, SAMPLES
from tests.stack import WsClient, clean_environ, settings_env, start_relay

pytestmark = [pytest.mark.flink, pytest.mark.integration, pytest.mark.slow]

SAMPLE_DIR = SAMPLES / "binance_xrpeth_2019"
TRADES = SAMPLE_DIR / "XRP_ETH-aggtrades.json.gz"
INTERVALS = "1m,5m,15m,1h,4h,1d"
WATCHED = ["1h", "4h", "1d"]  # what the relay client subscribes to (78 candles: it keeps up, nothing coalesced)
JOB = [sys.executable, "-m", "backend.flink", "run"]
RELAY_PYTHON = os.environ.get("CANDLES_TEST_RELAY_PYTHON", str(ROOT / ".venv" / "bin" / "python"))


@pytest.fixture(scope="module")
def java() -> int:
    """Java 11+; without it the test is skipped (CI, which installs it, sets CANDLES_TEST_REQUIRE_JAVA=1: fails)."""
    try:
        return java_version()
    except JavaMissing as exc:
        if os.environ.get("CANDLES_TEST_REQUIRE_JAVA") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def read_while_running(client: WsClient, job: subprocess.Popen[bytes], n: int, log: Path) -> list[dict[str, Any]]:
    """The first ``n`` candles the client receives, read as they come while the job runs (reading answers the
    relay's pings: a client that only listened after the job would be closed as dead)."""
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + 600
    while len(received) < n:
        if job.poll() is not None:
            if job.returncode != 0:
                pytest.fail(f"the job failed ({job.returncode}):\n{log.read_text()[-3000:]}")
            deadline = min(deadline, time.monotonic() + 30)  # published: the relay forwards at once
        if time.monotonic() > deadline:
            pytest.fail(f"{len(received)} of {n} candles received:\n{log.read_text()[-3000:]}")
        try:
            message = client.recv(timeout=1)
        except websocket.WebSocketTimeoutException:
            continue
        if isinstance(message, list):
            received.extend(m for m in message if m.get("type") == "candle")
    return received


def same_candle(got: dict[str, object], want: dict[str, str], skip: tuple[str, ...] = ()) -> bool:
    """Every field equal as the file writes it (floats as ``repr``: every bit), the sums included: both engines add
    a candle's trades one at a time in the order they arrived."""
    return all(
        (json.dumps(got[name]) if isinstance(got[name], bool) else str(got[name])) == text
        for name, text in want.items()
        if name not in skip
    )


def test_flink_candles_equal_the_aggregators_and_reach_redis_sql_and_a_relay_client(
    java: int, settings: Settings, tmp_path: Path
) -> None:
    if not Path(RELAY_PYTHON).exists():
        pytest.fail(f"the relay runs in the project's venv: {RELAY_PYTHON} is missing (make setup)")
    settings = settings.model_copy(update={"intervals": parse_intervals(INTERVALS)})  # the relay serves these
    expected = tmp_path / "aggregate.csv"
    assert aggregate_command(TRADES, INTERVALS, expected) == 0
    want = read_rows(expected)

    watched = [r for r in want if r["interval"] in WATCHED]
    out, log = tmp_path / "flink.csv", tmp_path / "flink.log"
    relay = start_relay(settings, log_dir=tmp_path, python=RELAY_PYTHON)
    try:
        with WsClient(relay.ws_url) as client, log.open("w") as log_file:
            client.subscribe(["XRPETH"], WATCHED)
            job = subprocess.Popen(
                [*JOB, "--input", str(SAMPLE_DIR), "--intervals", INTERVALS, "--out", str(out), "--parallelism", "2"],
                cwd=ROOT,
                env=clean_environ(settings_env(settings)),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            try:
                received = read_while_running(client, job, len(watched), log)
                assert job.wait(timeout=600) == 0, log.read_text()[-3000:]
            finally:
                processes.stop(job, 10)
    finally:
        relay.stop()
    assert "read 12477 rows: rejected 0 (none), late 0; wrote 4588 candles" in log.read_text(), log.read_text()[-3000:]

    # the file: every candle of `aggregate`, in its order, every field, byte for byte
    got = read_rows(out)
    assert len(got) == len(want) == 4588
    assert out.read_bytes() == expected.read_bytes()
    # literal pins from Binance's own klines (XRP_ETH-1m.json): the first minute and an empty one, flat
    first, empty = got[0], got[3]
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == (
        "0.00141342", "0.00141557", "0.00141266", "0.00141418", "1482.0",
    )  # fmt: skip
    assert (empty["open_time"], empty["open"], empty["close"], empty["volume"], empty["trades"], empty["seq"]) == (
        "1570752180000", "0.0014158", "0.0014158", "0.0", "0", "4",
    )  # fmt: skip
    assert [r["closed"] for r in got].count("false") == 6  # each stream's last candle is still open

    # the relay client: every candle of the streams it watches, in order, as the file has them
    by_stream = sorted(received, key=lambda c: (INTERVALS_MS[c["interval"]], c["open_time"]))
    assert len(received) == len(watched) == 78
    assert all(same_candle(r, w) for r, w in zip(by_stream, watched, strict=True))

    # the cache: each stream's latest is its open candle; recent holds the closed ones
    keys = CacheKeys(settings.redis_prefix)
    cache = redis.Redis.from_url(settings.redis_url or "")
    try:
        latest = json.loads(cache.get(keys.latest("XRPETH", "1d")) or b"null")
        assert same_candle(latest, want[-1])
        assert cache.zcard(keys.recent("XRPETH", "1h")) == 59
        assert cache.smembers(keys.symbols) == {b"XRPETH"}
    finally:
        cache.close()

    # SQL: every closed candle, every field
    engine = make_engine(settings.effective_database_url())
    try:
        stored = query_candles(engine, "XRPETH", "1m", limit=10_000)
    finally:
        engine.dispose()
    closed_1m = [r for r in want if r["interval"] == "1m" and r["closed"] == "true"]
    assert len(stored) == len(closed_1m) == 3559
    # the table keeps no seq
    assert all(same_candle(msgspec.to_builtins(c), w, ("seq",)) for c, w in zip(stored, closed_1m, strict=True))


def write_shuffled(path: Path, seed: int) -> int:
    """The sample's trades arriving shuffled within each minute, plus a made-up symbol with negative and unordered
    trade ids, many trades per millisecond and prices from 1e-8 to 1e6 with 17 significant digits (each must come
    back from Flink's sort key as the very same double): ``ts_ms,symbol,price,qty,side,trade_id`` rows."""
    rng = random.Random(seed)
    rows = []
    for t in json.loads(gzip.decompress(TRADES.read_bytes())):
        i = t["info"]
        rows.append((i["T"], "XRPETH", float(i["p"]), float(i["q"]), "sell" if i["m"] else "buy", i["a"]))
    start = rows[0][0] - rows[0][0] % 60_000
    for n in range(3_000):
        ts = start + n * 37 // 3  # about 80 trades a second, three to a millisecond
        price = rng.uniform(1, 10) * 10.0 ** rng.randint(-8, 6)
        rows.append(
            (ts, "ODDUSD", price, rng.uniform(0.001, 5.0), rng.choice(("buy", "sell")), rng.randint(-(10**12), 10**12))
        )
    by_minute: dict[int, list[tuple]] = {}
    for row in rows:
        by_minute.setdefault(row[0] - row[0] % 60_000, []).append(row)
    with path.open("w") as f:
        f.write("ts_ms,symbol,price,qty,side,trade_id\n")
        for minute in sorted(by_minute):
            batch = by_minute[minute]
            rng.shuffle(batch)
            f.writelines(f"{t},{s},{p!r},{q!r},{side},{i}\n" for t, s, p, q, side, i in batch)
    return len(rows)


def test_trades_arriving_out_of_order_give_the_aggregators_candles(java: int, tmp_path: Path) -> None:
    """Open and close by (ts, trade_id) from the job's sort key, and the sums in arrival order, on trades shuffled
    within each minute (a lateness of a minute keeps every one on time in both engines)."""
    trades = tmp_path / "shuffled.csv"
    assert write_shuffled(trades, seed=7) == 15_477
    expected, out = tmp_path / "aggregate.csv", tmp_path / "flink.csv"
    assert aggregate_command(trades, "1m,5m,1h", expected) == 0
    job = subprocess.run(
        [*JOB, "--input", str(trades), "--intervals", "1m,5m,1h", "--out", str(out), "--lateness-ms", "60000"],
        cwd=ROOT,
        env=clean_environ({}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    assert "read 15477 rows: rejected 0 (none), late 0;" in job.stderr, job.stderr[-3000:]
    assert out.read_bytes() == expected.read_bytes()
    got = read_rows(out)
    odd = [r for r in got if r["symbol"] == "ODDUSD" and r["interval"] == "1m"]
    assert len(odd) == 1 and odd[0]["trades"] == "3000"  # 37 s of made-up trades: one minute
