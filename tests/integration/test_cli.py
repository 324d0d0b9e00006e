"""``python -m backend aggregate``: trade files in, klines out, errors in one line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES

XRP = SAMPLES / "binance_xrpeth_2019"


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "backend", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_aggregate_writes_binance_klines_as_csv(tmp_path):
    out = tmp_path / "klines.csv"
    res = run("aggregate", XRP / "XRP_ETH-aggtrades.json.gz", "--intervals", "1m,5m", "--out", out)
    assert res.returncode == 0, res.stderr
    assert "read 12477 rows: used 12477, rejected 0" in res.stderr
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == [
        "type", "symbol", "interval", "open_time", "close_time", "open", "high", "low", "close", "volume",
        "quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume", "closed", "seq", "event_time",
    ]  # fmt: skip
    want_1m = json.loads((XRP / "XRP_ETH-1m.json").read_text())
    got_1m = [r for r in rows if r["interval"] == "1m"]
    assert len(got_1m) == len(want_1m) and len(rows) == len(want_1m) + 712
    for r, w in zip(got_1m, want_1m, strict=True):
        assert [int(r["open_time"]), float(r["open"]), float(r["high"]), float(r["low"]), float(r["close"])] == w[:5]
        assert float(r["volume"]) == pytest.approx(w[5], abs=1e-9)
    assert got_1m[-1]["closed"] == "false" and got_1m[0]["closed"] == "true"
    assert [int(r["seq"]) for r in got_1m] == list(range(1, len(got_1m) + 1))


def test_aggregate_writes_json_lines_and_reports_bad_rows(tmp_path):
    src = tmp_path / "trades.csv"
    src.write_text(
        "ts_ms,symbol,price,qty,side,trade_id\n"
        "1732665600000,BTCUSDT,97000.5,0.1,buy,1\n"
        "1732665601000,BTCUSDT,nan,0.1,buy,2\n"
        "1732665602000,BTCUSDT,97001.0,-1,sell,3\n"
        "1732665660500,BTCUSDT,97002.0,0.2,sell,4\n"
        "1732665661000,BTCUSDT,97003\n"
    )
    out = tmp_path / "candles.jsonl"
    res = run("aggregate", src, "--out", out)
    assert res.returncode == 0, res.stderr
    assert "read 5 rows: used 2, rejected 3" in res.stderr
    assert "bad_price" in res.stderr and "bad_qty" in res.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(c["open_time"], c["closed"], c["volume"]) for c in lines] == [
        (1732665600000, True, 0.1),
        (1732665660000, False, 0.2),
    ]
    assert "emitted_at" not in lines[0] and lines[0]["type"] == "candle"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["aggregate", "no/such/file.csv", "--out", "x.csv"], "no such file"),
        (["aggregate", str(XRP / "XRP_ETH-1m.json"), "--out", "x.csv", "--intervals", "7m"], "unknown interval"),
        (["aggregate", str(XRP / "XRP_ETH-1m.json"), "--out", "x.csv", "--format", "nope"], "format"),
    ],
)
def test_aggregate_fails_with_one_line(tmp_path, args, message):
    res = run(*args, cwd=tmp_path)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], res.stderr


def ingest_env(redis_url, settings, tmp_path):
    """The environment of an ``ingest`` subprocess on the test's Redis (own prefix) and its own SQLite file."""
    return dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        CANDLES_REDIS_URL=redis_url,
        CANDLES_DATABASE_URL=f"sqlite:///{tmp_path / 'replay.sqlite3'}",
        CANDLES_REDIS_PREFIX=settings.redis_prefix,
        CANDLES_UPDATES_CHANNEL=settings.updates_channel,
    )


def test_ingest_replays_only_the_symbols_asked_for(redis_url, settings, tmp_path):
    """``--symbols`` filters a replay; without it the whole file plays (tested in test_ingest)."""
    import redis

    from backend.cache import CacheKeys

    env = ingest_env(redis_url, settings, tmp_path)
    capture = SAMPLES / "ws_recordings" / "BINANCE_FUTURES.ws.1.0"
    args = ["ingest", "--source", f"replay:{capture}", "--speed", "0", "--symbols", "CTKUSDT,SUSHIUSDT"]
    res = subprocess.run(
        [sys.executable, "-m", "backend", *args, "--intervals", "1m"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    client = redis.Redis.from_url(redis_url)
    assert client.smembers(CacheKeys(settings.redis_prefix).symbols) == {b"CTKUSDT", b"SUSHIUSDT"}
    client.close()


def _truncated_capture(tmp_path: Path) -> Path:
    """The Binance capture, gzipped and cut at two thirds: the first part replays, then the file breaks."""
    import gzip

    whole = gzip.compress((SAMPLES / "ws_recordings" / "BINANCE_FUTURES.ws.1.0").read_bytes())
    path = tmp_path / "capture.ws.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    return path


@pytest.mark.resilience
def test_a_file_that_breaks_mid_way_is_one_line_and_what_was_read_is_kept(redis_url, settings, tmp_path):
    import redis

    from backend.cache import CacheKeys

    broken = _truncated_capture(tmp_path)
    res = run("aggregate", broken, "--out", tmp_path / "x.csv", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        f"error: {broken}: the compressed data ends early (a truncated download?) "
        + res.stderr.split("download?) ", 1)[1].strip()
    ]
    assert "(near byte " in res.stderr

    env = ingest_env(redis_url, settings, tmp_path)
    res = subprocess.run(
        [sys.executable, "-m", "backend", "ingest", "--source", f"replay:{broken}", "--speed", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if "error" in line.lower()]
    assert errors == [f"error: {broken}: " + res.stderr.split(f"error: {broken}: ", 1)[1].strip()], res.stderr
    client = redis.Redis.from_url(redis_url)
    assert client.smembers(CacheKeys(settings.redis_prefix).symbols)  # the part before the break was published
    client.close()


def aggregate_with_peak(args: list[str]) -> tuple[int, int, str]:
    """``python -m backend aggregate ARGS`` in a process of its own: exit status, peak RSS in KB, stderr.

    The peak is read in a parent started for it (``RUSAGE_CHILDREN`` of a fresh process counts only this child).
    """
    probe = (
        "import resource, subprocess, sys\n"
        f"res = subprocess.run([sys.executable, '-m', 'backend', 'aggregate', *{args!r}],"
        " capture_output=True, text=True)\n"
        "print(res.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stderr.write(res.stderr)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    code, peak_kb = map(int, res.stdout.split())
    return code, peak_kb, res.stderr


@pytest.mark.resilience
def test_a_gzip_bomb_is_refused_within_bounded_memory(tmp_path):
    """1 MB of gzip that expands to 1 GB: refused with one line, the process peaking far under 500 MB."""
    import zlib

    bomb = tmp_path / "bomb.json.gz"
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    with bomb.open("wb") as out:
        out.write(packer.compress(b"["))
        for _ in range(1024):
            out.write(packer.compress(b" " * (1 << 20)))
        out.write(packer.compress(b"]") + packer.flush())
    assert bomb.stat().st_size < 1100 << 10
    code, peak_kb, stderr = aggregate_with_peak([str(bomb), "--format", "ccxt_json", "--out", str(tmp_path / "x.csv")])
    assert code == 2 and "Traceback" not in stderr
    assert stderr.strip().splitlines() == [
        f"error: {bomb}: expands past {bomb.stat().st_size * 100:,} bytes (100× its size or 1,099,511,627,776 bytes): "
        "a decompression bomb? Raise CANDLES_READ_MAX_RATIO or CANDLES_READ_MAX_BYTES if the file is genuine"
    ]
    assert peak_kb < 500 * 1024, f"peak {peak_kb / 1024:.0f} MB"


def test_the_read_limits_the_error_names_are_honoured(tmp_path):
    """The bomb's message tells a user to raise CANDLES_READ_MAX_RATIO or _BYTES: the command reads them."""
    import gzip

    trades = tmp_path / "trades.csv.gz"
    row = b"1732665600000,BTCUSDT,97000.0,0.1,buy,1\n"
    trades.write_bytes(gzip.compress(b"ts,symbol,price,qty,side,trade_id\n" + row * 60_000))  # 2.3 MB of CSV
    out = tmp_path / "c.csv"
    base = dict(os.environ, PYTHONPATH=str(ROOT))
    for name in ("CANDLES_READ_MAX_RATIO", "CANDLES_READ_MAX_BYTES", "CANDLES_LOG_LEVEL"):
        base.pop(name, None)
    cmd = [sys.executable, "-m", "backend", "aggregate", str(trades), "--out", str(out)]
    assert subprocess.run(cmd, cwd=ROOT, env=base, capture_output=True, timeout=120).returncode == 0
    capped = subprocess.run(
        cmd, cwd=ROOT, env=base | {"CANDLES_READ_MAX_BYTES": str(1 << 20)}, capture_output=True, text=True, timeout=120
    )
    assert capped.returncode == 2
    assert f"error: {trades}: expands past 1,048,576 bytes" in capped.stderr
    bad = subprocess.run(cmd, cwd=ROOT, env=base | {"CANDLES_READ_MAX_RATIO": "1"}, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr == "error: CANDLES_READ_MAX_RATIO: input should be greater than 1 (got '1')\n"


def modules_the_command_loads(tmp_path: Path, names: tuple[str, ...]) -> tuple[str, list[str]]:
    """``aggregate`` on a one-trade file in a fresh interpreter: its exit status and which of ``names`` it imported."""
    src = tmp_path / "trades.csv"
    src.write_text("ts_ms,symbol,price,qty,side,trade_id\n1700000000000,BTCUSDT,97000.5,0.01,buy,1\n")
    code = (
        "import sys; from backend.cli import main; "
        f"rc = main(['aggregate', {str(src)!r}, '--out', {str(tmp_path / 'c.csv')!r}]); "
        f"print(rc, ','.join(sorted(m for m in {names!r} if m in sys.modules)))"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    status, _, loaded = res.stdout.strip().partition(" ")
    return status, [m for m in loaded.split(",") if m] or ([] if status == "0" else [res.stderr])


def test_the_command_imports_no_settings(tmp_path):
    """pydantic (the settings) is about 0.15 s of the command's start, which it does not need."""
    assert modules_the_command_loads(tmp_path, ("pydantic", "pydantic_settings", "backend.config")) == ("0", [])


def test_the_command_imports_no_pandas(tmp_path):
    """pandas is about 0.4 s of a start (pyarrow's ``to_numpy`` imports it on first use): the command never needs it."""
    assert modules_the_command_loads(tmp_path, ("pandas",)) == ("0", [])


# spills after a few KB, and each batch of trades takes 20 ms: the run is slow enough to be stopped mid-way
SLOW_AGGREGATE = """
import functools, sys, time
from backend import offline
from backend.aggregate import Aggregator
offline.CandleFile = functools.partial(offline.CandleFile, spill_bytes=4_000)
add = Aggregator.add
Aggregator.add = lambda self, batch: (time.sleep(0.02), add(self, batch))[1]
from backend.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is not sent to another process on Windows")
def test_sigterm_mid_run_removes_the_spill_files_and_leaves_no_output(tmp_path):
    import signal
    import time

    src = tmp_path / "trades.csv"
    with src.open("w") as f:
        f.write("ts_ms,symbol,price,qty,side,trade_id\n")
        f.writelines(f"{1732665600000 + i * 40},SYM{i % 7},{100 + i % 13}.5,0.25,buy,{i}\n" for i in range(200_000))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "candles.csv").write_text("the previous run's file\n")
    cmd = [sys.executable, "-c", SLOW_AGGREGATE, "aggregate", str(src), "--intervals", "1s,1m", "--out"]
    proc = subprocess.Popen([*cmd, str(out_dir / "candles.csv")], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.monotonic() + 60
        while not list(out_dir.glob(".candles-*/*")):  # a stream spilled: the run is under way
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it spilled"
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert sorted(p.name for p in out_dir.iterdir()) == ["candles.csv"]  # no spill directory, no part file
    assert (out_dir / "candles.csv").read_text() == "the previous run's file\n"


def test_an_interrupted_write_keeps_the_previous_file_and_leaves_no_part(tmp_path, monkeypatch):
    from backend import candle_files
    from backend.candle_files import CandleFile
    from backend.models import Candle

    out = tmp_path / "candles.csv"
    out.write_text("before\n")
    sink = CandleFile(out)
    sink.add([Candle(symbol="BTCUSDT", interval="1m", open_time=0, close_time=59_999, open=1.0, high=1.0, low=1.0,
                     close=1.0, volume=1.0, quote_volume=1.0, trades=1, taker_buy_volume=0.0,
                     taker_buy_quote_volume=0.0, closed=True, seq=1, event_time=0)])  # fmt: skip

    def broken(part, dst):  # the disk fills, or a signal comes, while the streams are copied
        raise OSError("No space left on device")

    monkeypatch.setattr(candle_files, "_copy", broken)
    sink._spill()
    with pytest.raises(OSError, match="No space"):
        sink.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["candles.csv"]
    assert out.read_text() == "before\n"


def test_a_week_without_trades_is_written_in_bounded_memory(tmp_path):
    """Two trades a week apart at 1s: 604,800 flat candles, made and written a chunk at a time (they were all
    made at once: a 450 MB peak here, a month 1.7 GB, a year out of memory)."""
    trades = tmp_path / "week.csv"
    trades.write_text(
        "ts_ms,symbol,price,qty,side,trade_id\n"
        "1732665600000,BTCUSDT,100.0,1.0,buy,1\n"
        "1733270400000,BTCUSDT,101.0,1.0,sell,2\n"
    )
    out = tmp_path / "candles.csv"
    code, peak_kb, stderr = aggregate_with_peak([str(trades), "--intervals", "1s,1m", "--out", str(out)])
    assert (code, stderr.strip().splitlines()[-1]) == (
        0,
        f"read 2 rows: used 2, rejected 0 (none), late 0; wrote 614882 candles to {out}",
    )
    assert peak_kb < 250 * 1024, f"peak {peak_kb / 1024:.0f} MB"
    lines = out.read_text().splitlines()
    assert len(lines) == 1 + 604_801 + 10_081
    assert lines[604_800] == (
        "candle,BTCUSDT,1s,1733270399000,1733270399999,100.0,100.0,100.0,100.0,0.0,0.0,0,0.0,0.0,true,604800,"
        "1732665600000"
    )
