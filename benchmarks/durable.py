"""What "nothing lost" costs on the ingest path, side by side in one run.

    .venv/bin/python benchmarks/durable.py [--trades 300000] [--symbols 20] [--rounds 3]

1. Per closed candle, keeping it durably until SQL has it: appended to the local spool file
   (what the SQL sink does) against XADD to a Redis stream in one pipeline per flush (the
   alternative), and the in-memory queue alone (before), for flushes of 10 and 1,000 candles.
2. The whole ingest path on simulator trades (aggregate → Redis sink → SQL sink queue), with
   and without the spool and the per-flush resume state (one HSET of the changed symbols).
Valkey is the embedded one (or ``CANDLES_BENCH_REDIS_URL``). Best of ``--rounds``, alternated;
wall time, and this process's CPU time beside it (steadier on a shared machine, but blind to
the time spent waiting for Valkey).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from backend.aggregate import Aggregator
from backend.cache import CacheKeys, save_resume_states
from backend.config import DEFAULT_INTERVALS
from backend.models import Candle, TradeBatch, encode_message
from backend.sinks.redis import RedisSink
from backend.sinks.spool import Spool
from benchmarks.aggregate import START_MS, make_trades

CHUNK = 2_000  # trades per flush on the ingest path (the simulator's ticks are smaller, replays larger)


def closed_candles(n: int) -> list[Candle]:
    return [
        Candle(
            symbol=f"SYM{i % 20:02d}USDT",
            interval="1s",
            open_time=START_MS + i * 1000,
            close_time=START_MS + i * 1000 + 999,
            open=100.0 + i,
            high=101.0 + i,
            low=99.0 + i,
            close=100.5 + i,
            volume=12.345,
            quote_volume=1234.5,
            trades=17,
            taker_buy_volume=6.1,
            taker_buy_quote_volume=610.0,
            closed=True,
            seq=i + 1,
            event_time=START_MS + i * 1000 + 998,
        )
        for i in range(n)
    ]


def timed(run: Callable[[], None]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def best(run: Callable[[], None], rounds: int) -> tuple[float, float]:
    times = [timed(run) for _ in range(rounds)]
    return min(t[0] for t in times), min(t[1] for t in times)


def per_candle(client: redis.Redis, tmp: Path, flush: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Microseconds per closed candle of each way of keeping it, at ``flush`` candles per flush."""
    total = 100_000
    flushes = [closed_candles(flush) for _ in range(total // flush)]
    spool = Spool(tmp / f"spool-{flush}.jsonl")

    def memory() -> None:
        q: deque[Candle] = deque()
        for f in flushes:
            q.extend(f)

    def file() -> None:
        for f in flushes:
            spool.append(f)
        spool.clear()

    def stream() -> None:
        for f in flushes:
            pipe = client.pipeline(transaction=False)
            for c in f:
                pipe.xadd("bench:spool", {"c": encode_message(c)})
            pipe.execute()
        client.delete("bench:spool")

    out = {}
    for name, run in (("in-memory queue only", memory), ("spool file", file), ("Redis stream (XADD)", stream)):
        wall, cpu = best(run, rounds)
        out[name] = (wall / total * 1e6, cpu / total * 1e6)
    spool.close(remove=True)
    return out


def ingest_path(client: redis.Redis, batch: TradeBatch, tmp: Path, spooled: bool, state: bool) -> Callable[[], None]:
    parts = batch.split(CHUNK)
    keys = CacheKeys("benchdurable")

    def run() -> None:
        agg = Aggregator(DEFAULT_INTERVALS)
        sink = RedisSink(client, keys=keys, channel="bench:updates")
        queue: deque[Candle] = deque()
        spool = Spool(tmp / "ingest.jsonl") if spooled else None
        for i, part in enumerate(parts):
            agg.add(part)
            candles = agg.drain(START_MS + i)
            sink.put(candles)
            closed = [c for c in candles if c.closed]
            if spool is not None:
                spool.append(closed)
            queue.extend(closed)
            if state:
                save_resume_states(client, keys, agg.take_changed_state())
        if spool is not None:
            spool.close(remove=True)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trades", type=int, default=300_000)
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    url = os.environ.get("CANDLES_BENCH_REDIS_URL")
    server = None
    if not url:
        from backend.embedded import EmbeddedValkey

        server = EmbeddedValkey()
        url = server.url
    client = redis.Redis.from_url(url)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        print("keeping a closed candle until SQL has it, µs per candle, wall (CPU), 100,000 candles:")
        print(f"{'':24} {'10 per flush':>16} {'1,000 per flush':>16}")
        small, large = per_candle(client, tmp, 10, args.rounds), per_candle(client, tmp, 1000, args.rounds)
        for name in small:
            cells = [f"{w:.2f} ({c:.2f})" for w, c in (small[name], large[name])]
            print(f"{name:24} {cells[0]:>16} {cells[1]:>16}")

        batch = make_trades(args.trades, args.symbols)
        variants = {
            "before": ingest_path(client, batch, tmp, spooled=False, state=False),
            "with the spool": ingest_path(client, batch, tmp, spooled=True, state=False),
            "with spool + resume state": ingest_path(client, batch, tmp, spooled=True, state=True),
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, run in variants.items():
                times[name].append(timed(run))
        print(f"\ningest path, {args.trades:,} trades, {args.symbols} symbols, {CHUNK:,} trades per flush:")
        print(f"{'':28} {'trades/s (wall)':>16} {'trades/s (CPU)':>16}")
        base = [args.trades / min(t[i] for t in times["before"]) for i in (0, 1)]
        for name, ts in times.items():
            rates = [args.trades / min(t[i] for t in ts) for i in (0, 1)]
            cells = [f"{r:,.0f} {r / b - 1:+.0%}" for r, b in zip(rates, base, strict=True)]
            print(f"{name:28} {cells[0]:>16} {cells[1]:>16}")
    client.close()
    if server is not None:
        server.stop()


if __name__ == "__main__":
    main()
