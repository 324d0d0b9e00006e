"""Candle engine throughput, side by side in one run on the same trades.

    .venv/bin/python benchmarks/aggregate.py [--trades 1000000] [--symbols 20]
    .venv/bin/python benchmarks/aggregate.py --compare-with OTHER/backend/aggregate.py [--rounds 10]
    .venv/bin/python benchmarks/aggregate.py --whole-process [--trades 1000000] [--memory-trades 10000000]

Prints trades/s and peak memory of: the streaming aggregator alone; the whole
ingest path (decode Binance trade messages → aggregate → Redis flush); pandas
groupby OHLCV as the batch reference; and the offline ``aggregate`` command
against pandas ``read_csv`` + the same groupby on one CSV. Each phase runs in a
fresh process so its memory is its own; ratios matter more than absolute
figures on a noisy machine.

``--whole-process`` times what a user waits for: ``python -m backend aggregate`` against a
pandas script (``read_csv`` + the same OHLCV per period + ``to_csv``) on the same CSV, each as its
own process from start to exit, alternated, best of ``--rounds`` (3), in wall and in CPU time (every
thread; what other jobs on the machine cannot stretch); it checks both give the same candles, then
does the same on a CSV ``--memory-trades / --trades`` times longer (the ratio without the fixed cost
of starting Python and importing numpy and pyarrow, about 0.14 s) and prints the command's peak memory
(``VmHWM``) at both sizes: streaming, it should stay flat.

``--compare-with`` measures only the streaming aggregator: this tree's against another
version of ``backend/aggregate.py`` (say, ``git show main:backend/aggregate.py > /tmp/a.py``),
loaded into the same process and alternated round by round on the same trades, best of
``--rounds`` each: a before/after that the machine's load cannot tilt.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd

from backend.config import DEFAULT_INTERVALS, INTERVALS_MS
from backend.models import TradeBatch

START_MS = 1_732_665_600_000
CHUNK = 10_000


def make_trades(n: int, symbols: int) -> TradeBatch:
    from backend.sources.simulator import Simulator

    names = [f"SYM{i:02d}USDT" for i in range(symbols)]
    return Simulator(names, seed=42, rate=1_000.0).generate(START_MS, n_trades=n)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ---------------------------------------------------------------- phases (each returns seconds)


def phase_aggregator(batch: TradeBatch, module: object = None) -> Callable[[], None]:
    from backend import aggregate

    aggregator = (module or aggregate).Aggregator  # type: ignore[attr-defined]
    parts = batch.split(CHUNK)

    def run() -> None:
        agg = aggregator(DEFAULT_INTERVALS)
        for i, part in enumerate(parts):
            agg.add(part)
            agg.drain(i)

    return run


def binance_messages(batch: TradeBatch) -> list[list[bytes]]:
    syms = np.asarray(batch.symbols)[batch.sym]
    msgs = [
        b'{"e":"trade","E":%d,"s":"%s","t":%d,"p":"%.8f","q":"%.8f","T":%d,"m":%s,"M":true}'
        % (t, s.encode(), i, p, q, t, b"false" if buy else b"true")
        for s, t, i, p, q, buy in zip(
            syms.tolist(),
            batch.ts.tolist(),
            batch.trade_id.tolist(),
            batch.price.tolist(),
            batch.qty.tolist(),
            batch.taker_buy.tolist(),
            strict=True,
        )
    ]
    return [msgs[i : i + CHUNK] for i in range(0, len(msgs), CHUNK)]


def phase_ingest(batch: TradeBatch) -> Callable[[], None]:
    import redis

    from backend.aggregate import Aggregator
    from backend.cache import CacheKeys
    from backend.models import now_ms
    from backend.sinks.redis import RedisSink
    from backend.sources.binance import decode_trade_messages

    url = os.environ.get("CANDLES_BENCH_REDIS_URL")
    if not url:
        from backend.embedded import EmbeddedValkey

        url = EmbeddedValkey().url
    client = redis.Redis.from_url(url)
    messages = binance_messages(batch)

    def run() -> None:
        agg = Aggregator(DEFAULT_INTERVALS)
        pub = RedisSink(client, keys=CacheKeys("bench"), channel="bench:updates")
        for part in messages:
            agg.add(decode_trade_messages(part))
            pub.put(agg.drain(now_ms()))
        pub.put(agg.drain(now_ms(), force=True))

    return run


def pandas_ohlcv(df: pd.DataFrame) -> None:
    """Batch OHLCV of every default interval: group by symbol and period, first/max/min/last/sum."""
    df = df.sort_values(["symbol", "ts"], kind="stable")
    df["quote"] = df.price * df.qty
    for interval in DEFAULT_INTERVALS:
        ms = INTERVALS_MS[interval]
        key = df.ts - df.ts % ms
        df.groupby([df.symbol, key], sort=True).agg(
            open=("price", "first"),
            high=("price", "max"),
            low=("price", "min"),
            close=("price", "last"),
            volume=("qty", "sum"),
            quote_volume=("quote", "sum"),
            trades=("price", "size"),
        )


def frame(batch: TradeBatch) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": np.asarray(batch.symbols, dtype=object)[batch.sym],
            "ts": batch.ts,
            "price": batch.price,
            "qty": batch.qty,
        }
    )


def phase_pandas(batch: TradeBatch) -> Callable[[], None]:
    df = frame(batch)
    return lambda: pandas_ohlcv(df.copy())


def write_csv(batch: TradeBatch, path: Path) -> None:
    df = frame(batch)
    df = df[["ts", "symbol", "price", "qty"]].rename(columns={"ts": "ts_ms"})
    df["side"] = np.where(batch.taker_buy, "buy", "sell")
    df["trade_id"] = batch.trade_id
    df.to_csv(path, index=False)


def phase_offline(batch: TradeBatch, path: Path) -> Callable[[], None]:
    from backend.offline import aggregate_file

    write_csv(batch, path)
    return lambda: aggregate_file(path, DEFAULT_INTERVALS)


def phase_pandas_csv(batch: TradeBatch, path: Path) -> Callable[[], None]:
    write_csv(batch, path)

    def run() -> None:
        df = pd.read_csv(path)
        pandas_ohlcv(df.rename(columns={"ts_ms": "ts"}))

    return run


PHASES = {
    "aggregator (streaming, 10k batches)": lambda b, p: phase_aggregator(b),
    "ingest: decode → aggregate → Redis": lambda b, p: phase_ingest(b),
    "pandas groupby OHLCV (in memory)": lambda b, p: phase_pandas(b),
    "offline `aggregate` command (CSV)": phase_offline,
    "pandas read_csv + groupby (CSV)": phase_pandas_csv,
}


class PeakRss:
    """Samples this process's resident memory every 5 ms while a phase runs."""

    def __init__(self) -> None:
        self.base = rss_mb()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(0.0, max(self.peak, rss_mb()) - self.base)


def measure(name: str, n: int, symbols: int, out: mp.Queue) -> None:
    batch = make_trades(n, symbols)
    with tempfile.TemporaryDirectory() as tmp:
        run = PHASES[name](batch, Path(tmp) / "trades.csv")
        gc.collect()
        mem = PeakRss()
        t = time.perf_counter()
        run()
        dt = time.perf_counter() - t
        grown = mem.stop()
    out.put((name, dt, grown))


def compare(other: Path, n: int, symbols: int, rounds: int) -> None:
    """This tree's aggregator against ``other`` (a version of aggregate.py), alternated in one process."""
    spec = importlib.util.spec_from_file_location("other_aggregate", other)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    batch = make_trades(n, symbols)
    runs = {f"{other}": phase_aggregator(batch, module), "this tree": phase_aggregator(batch)}
    best = dict.fromkeys(runs, float("inf"))
    order = list(runs)
    for _ in range(rounds):
        for name in order:
            gc.collect()
            t = time.process_time()  # CPU time: the other processes on the machine do not count
            runs[name]()
            best[name] = min(best[name], time.process_time() - t)
        order.reverse()  # neither goes first every time
    print(f"streaming aggregator, {n:,} trades, {symbols} symbols, CPU time, best of {rounds} alternated:")
    for name, dt in best.items():
        print(f"{name:40} {n / dt:>12,.0f} trades/s")
    print(f"this tree vs the other: {best[f'{other}'] / best['this tree']:.3f}× as fast")


PANDAS_SCRIPT = """
import sys
import pandas as pd
src, dst, intervals = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
ms = {"1s": 1000, "1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
df = pd.read_csv(src)
df["quote"] = df.price * df.qty
out = []
for interval in intervals:
    key = df.ts_ms - df.ts_ms % ms[interval]
    c = df.groupby([df.symbol, key.rename("open_time")], sort=True).agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
        volume=("qty", "sum"), quote_volume=("quote", "sum"), trades=("price", "size"),
    )
    c.insert(0, "interval", interval)
    out.append(c)
pd.concat(out).to_csv(dst)
"""


def write_csv_repeated(batch: TradeBatch, path: Path, times: int) -> None:
    """``times`` copies of the trades one after another in time (ids and timestamps shifted): a long file."""
    span = int(batch.ts.max() - batch.ts.min()) + 1
    step = int(batch.trade_id.max()) + 1
    df = frame(batch)[["ts", "symbol", "price", "qty"]].rename(columns={"ts": "ts_ms"})
    df["side"] = np.where(batch.taker_buy, "buy", "sell")
    for k in range(times):
        part = df.assign(ts_ms=batch.ts + k * span, trade_id=batch.trade_id + k * step)
        part.to_csv(path, index=False, header=k == 0, mode="w" if k == 0 else "a")


def run_process(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and CPU seconds (user + system, every thread) of one process, start to exit.

    The peak is the child's own ``VmHWM``, read every 5 ms while it runs: ``wait4``'s ``ru_maxrss``
    would not do, Linux carries the parent's peak over into a forked child. The CPU time is what
    the machine's other jobs cannot stretch: when they hold every core, the wall time tends to it.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kb = 0
    while proc.poll() is None:
        with contextlib.suppress(OSError, ValueError, StopIteration), open(f"/proc/{proc.pid}/status") as f:
            line = next(x for x in f if x.startswith("VmHWM:"))
            peak_kb = max(peak_kb, int(line.split()[1]))
        time.sleep(0.005)
    dt = time.perf_counter() - t
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {err}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return dt, peak_kb / 1024, cpu


def same_candles(ours: Path, theirs: Path) -> int:
    """Both outputs hold the same candles (ours also has flat ones, pandas only periods with trades)."""
    a = pd.read_csv(ours)
    a = a[a.trades > 0].set_index(["symbol", "interval", "open_time"]).sort_index()
    b = pd.read_csv(theirs).set_index(["symbol", "interval", "open_time"]).sort_index()
    assert a.index.equals(b.index), "different candles"
    for col in ("open", "high", "low", "close", "trades"):
        assert (a[col] == b[col]).all(), col
    for col in ("volume", "quote_volume"):
        assert np.allclose(a[col], b[col], rtol=1e-9, atol=0), col
    return len(a)


OURS, PANDAS = "python -m backend aggregate", "pandas read_csv + groupby + to_csv"


def side_by_side(src: Path, tmp: Path, n: int, rounds: int) -> dict[str, tuple[float, float, float]]:
    """The command and the pandas script on ``src``, alternated, best of ``rounds``: (wall s, peak MB, CPU s)."""
    intervals = ",".join(DEFAULT_INTERVALS)
    ours, theirs = tmp / "ours.csv", tmp / "pandas.csv"
    command = [sys.executable, "-m", "backend", "aggregate", str(src), "--intervals", intervals, "--out", str(ours)]
    script = [sys.executable, "-c", PANDAS_SCRIPT, str(src), str(theirs), intervals]
    runs = {OURS: command, PANDAS: script}
    best = {name: (float("inf"), 0.0) for name in runs}
    cpu = dict.fromkeys(runs, float("inf"))
    order = list(runs)
    for _ in range(rounds):
        for name in order:
            dt, rss, used = run_process(runs[name])
            best[name] = min(best[name], (dt, rss))
            cpu[name] = min(cpu[name], used)
        order.reverse()
    checked = same_candles(ours, theirs)
    size = src.stat().st_size / 2**20
    print(f"whole process, {n:,} trades ({size:.0f} MB CSV), intervals {intervals}, best of {rounds} alternated:")
    for name, (dt, rss) in best.items():
        print(f"{name:40} {dt:>8.2f} s {n / dt:>12,.0f} trades/s {rss:>8.0f} MB peak {cpu[name]:>6.2f} s CPU")
    ratio = best[PANDAS][0] / best[OURS][0]
    print(f"the command vs pandas: {ratio:.2f}× as fast ({cpu[PANDAS] / cpu[OURS]:.2f}× in CPU time); ", end="")
    print(f"the same {checked:,} candles with trades")
    return {name: (*best[name], cpu[name]) for name in runs}


def whole_process(n: int, memory_n: int, symbols: int, rounds: int) -> None:
    """At ``n`` trades, then on a file ``memory_n / n`` times longer: the ratio without the start's fixed cost,
    and the command's peak memory, which should stay flat."""
    os.chdir(Path(__file__).resolve().parent.parent)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "trades.csv"
        batch = make_trades(n, symbols)
        write_csv_repeated(batch, src, 1)
        print(f"{symbols} symbols")
        small = side_by_side(src, Path(tmp), n, rounds)[OURS][1]
        if memory_n > n:
            times = memory_n // n
            write_csv_repeated(batch, src, times)
            rss = side_by_side(src, Path(tmp), n * times, rounds)[OURS][1]
            print(f"the command's peak at {n * times:,} trades: {rss / small:.2f}× the peak at {n:,}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--compare-with", type=Path, help="another backend/aggregate.py to measure this one against")
    ap.add_argument("--rounds", type=int, help="rounds alternated (--compare-with: 10, --whole-process: 3)")
    ap.add_argument("--whole-process", action="store_true", help="the command against pandas, process against process")
    ap.add_argument("--memory-trades", type=int, default=10_000_000, help="with --whole-process: the long run")
    args = ap.parse_args()
    if args.whole_process:
        whole_process(args.trades, args.memory_trades, args.symbols, args.rounds or 3)
        return
    if args.compare_with:
        compare(args.compare_with, args.trades, args.symbols, args.rounds or 10)
        return
    ctx = mp.get_context("spawn")
    print(f"{args.trades:,} trades, {args.symbols} symbols, intervals {','.join(DEFAULT_INTERVALS)}")
    print(f"{'phase':40} {'trades/s':>12} {'seconds':>8} {'+peak MB':>8}")
    t = time.perf_counter()
    make_trades(args.trades, args.symbols)
    dt = time.perf_counter() - t
    print(f"{'simulator: generating the trades':40} {args.trades / dt:>12,.0f} {dt:>8.2f} {'':>8}")
    results = {}
    for name in PHASES:
        q: mp.Queue = ctx.Queue()
        p = ctx.Process(target=measure, args=(name, args.trades, args.symbols, q))
        p.start()
        name, dt, peak = q.get()
        p.join()
        results[name] = dt
        print(f"{name:40} {args.trades / dt:>12,.0f} {dt:>8.2f} {peak:>8.0f}")
    names = list(PHASES)
    print(f"offline command vs pandas read_csv+groupby: {results[names[4]] / results[names[3]]:.2f}× as fast")
    print(f"streaming aggregator vs pandas in memory:   {results[names[2]] / results[names[0]]:.2f}× as fast")


if __name__ == "__main__":
    main()
