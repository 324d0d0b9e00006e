"""The Flink job against the in-process aggregator on the same trades, side by side.

    make bench-flink                      # builds .venv-flink, then runs this in .venv
    .venv/bin/python benchmarks/flink.py [--trades 1000000] [--symbols 20] [--parallelism 1,2]

One CSV of simulated trades (``--symbols`` symbols, the default intervals); then, each as its own
process: ``python -m backend aggregate`` (the in-process aggregator: read, aggregate, write) and
``python -m backend.flink run`` in ``.venv-flink`` at each parallelism (convert to the job's CSV, start the
JVM and the mini-cluster, run the SQL, write the candles). For Flink it prints the conversion to CSV and
the startup (to the job's first batch of 100 result rows: JVM, mini-cluster, job graph, the first 0.3 % of
the candles) apart from the trades/s of the job after it, and the wall time of the whole command beside
the aggregator's (whose trades/s is over its whole run: reading, aggregating, writing). Both must write the
same file, byte for byte: the last column says whether they did.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.aggregate import make_trades, write_csv  # noqa: E402

INTERVALS = "1s,1m,5m,15m,1h"
BATCH_ROWS = 100
FLINK_DONE = re.compile(
    r"wrote (\d+) candles.*converted in ([\d.]+) s, first batch after ([\d.]+) s, done after ([\d.]+) s"
)
AGGREGATE_DONE = re.compile(r"wrote (\d+) candles")


def timed(cmd: list[str]) -> tuple[float, str]:
    """Wall seconds of ``cmd`` (from the repository root) and its stderr; raises when it fails."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, done.stderr


def flink_run(cmd: list[str]) -> tuple[float, int, float, float, float]:
    """Run the Flink job: wall seconds, candles written, seconds converting, to its first result batch, in all."""
    wall, err = timed(cmd)
    match = FLINK_DONE.search(err)
    if match is None:
        raise SystemExit(f"no summary from the Flink job:\n{err[-3000:]}")
    return wall, int(match.group(1)), *map(float, match.group(2, 3, 4))  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--parallelism", default="1,2", help="comma-separated parallelisms of the Flink job")
    parser.add_argument("--flink-python", default=str(ROOT / ".venv-flink" / "bin" / "python"))
    args = parser.parse_args(argv)
    if not Path(args.flink_python).exists():
        raise SystemExit(f"{args.flink_python} is missing: make flink-venv")

    with tempfile.TemporaryDirectory(prefix="bench-flink-") as tmp:
        trades = Path(tmp) / "trades.csv"
        write_csv(make_trades(args.trades, args.symbols), trades)
        n = args.trades
        print(f"{n:,} trades, {args.symbols} symbols, intervals {INTERVALS}; each run its own process\n")
        head = f"{'engine':<34}{'wall s':>8}{'convert s':>11}{'startup s':>11}{'trades/s':>12}{'candles':>10}"
        print(f"{head}  same file")

        aggregate = [sys.executable, "-m", "backend", "aggregate", str(trades), "--intervals", INTERVALS]
        reference = Path(tmp) / "aggregate.csv"
        wall, err = timed([*aggregate, "--out", str(reference)])
        match = AGGREGATE_DONE.search(err)
        candles = int(match.group(1)) if match else -1
        name = "in-process aggregator (aggregate)"
        print(f"{name:<34}{wall:>8.1f}{'-':>11}{'-':>11}{n / wall:>12,.0f}{candles:>10,}")

        for p in [int(x) for x in args.parallelism.split(",") if x]:
            cmd = [args.flink_python, "-m", "backend.flink", "run", "--input", str(trades), "--intervals", INTERVALS]
            out = Path(tmp) / f"flink{p}.csv"
            # small result batches: the first one comes after the first 0.3 % of the candle rows, so its time is the
            # startup and what follows it is the job at work
            run = flink_run([*cmd, "--out", str(out), "--parallelism", str(p), "--batch-rows", str(BATCH_ROWS)])
            wall, flink_candles, convert, startup, total = run
            rate = n / max(total - startup, 1e-9)
            same = "yes" if out.read_bytes() == reference.read_bytes() else "NO"
            name = f"Flink SQL job, parallelism {p}"
            print(f"{name:<34}{wall:>8.1f}{convert:>11.1f}{startup:>11.1f}{rate:>12,.0f}{flink_candles:>10,}  {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
