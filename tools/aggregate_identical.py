"""Check that two trees' ``python -m backend aggregate`` write the same bytes, on many inputs.

    .venv/bin/python tools/aggregate_identical.py --reference /work/main [--work /tmp/identical] [--big 1000000]

A change to the candle engine that is meant to be faster must not change a single
byte of its output: the order of floating-point additions decides the last bits of
the volume sums. This runs the command of this tree and of ``--reference`` (another
checkout, e.g. ``main``) on the same inputs, for several interval sets, into CSV and
JSON lines, and compares the outputs with ``cmp`` semantics (bytes), the exit
status and the summary line. Inputs: ``benchmarks/aggregate.py``'s simulator trades
(``--big`` trades, 20 symbols), small generated files with odd shapes (gaps, one
symbol, many symbols, equal timestamps, trades out of order across read batches,
late trades, quantities of every magnitude), and every file under ``data/samples``.
It prints one line per run and exits 1 if any differs.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.aggregate import make_trades, write_csv  # noqa: E402

INTERVAL_SETS = ("1s,1m,5m,15m,1h", "1m,1h,1d", "1s,4h", "1m")
BIG_INTERVAL_SETS = ("1s,1m,5m,15m,1h", "1m,1h,1d")
START_MS = 1_732_665_600_000
LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", re.MULTILINE)  # a log line's clock


def write_plain(path: Path, ts: np.ndarray, sym: np.ndarray, price: np.ndarray, qty: np.ndarray, tid: np.ndarray,
                buy: np.ndarray) -> None:  # fmt: skip
    """``ts_ms,symbol,price,qty,side,trade_id`` rows in the order given (floats as ``repr``)."""
    with path.open("w") as f:
        f.write("ts_ms,symbol,price,qty,side,trade_id\n")
        for t, s, p, q, i, b in zip(ts.tolist(), sym.tolist(), price.tolist(), qty.tolist(), tid.tolist(),
                                    buy.tolist(), strict=True):  # fmt: skip
            f.write(f"{t},{s},{p!r},{q!r},{'buy' if b else 'sell'},{i}\n")


def odd_shape(path: Path, shape: str, seed: int) -> None:
    """A small trade file of one odd shape (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n = {"tiny": 7, "one_symbol": 25_000, "many_symbols": 40_000}.get(shape, 30_000)
    symbols = {"one_symbol": 1, "many_symbols": 400, "tiny": 2}.get(shape, 5)
    sym_code = rng.integers(0, symbols, n)
    if shape == "gaps":  # bursts separated by gaps of seconds to 15 minutes: flat candles, closes across gaps
        steps = np.where(rng.random(n) < 0.001, rng.integers(1_000, 900_000, n), rng.integers(0, 400, n))
    elif shape == "many_symbols":  # a short span, so that 400 symbols' flat 1s candles stay few
        steps = rng.integers(0, 20, n)
    elif shape == "equal_ts":  # many trades share a millisecond
        steps = np.where(rng.random(n) < 0.05, rng.integers(1, 3_000, n), 0)
    else:
        steps = rng.integers(0, 250, n)
    ts = START_MS + rng.integers(0, 86_400_000) + np.cumsum(steps)
    tid = np.zeros(n, dtype=np.int64)
    for s in range(symbols):  # ids increase per symbol, as an exchange numbers them
        mask = sym_code == s
        tid[mask] = np.arange(1, int(mask.sum()) + 1) + rng.integers(0, 10**9)
    if shape == "equal_ts":  # ids out of order within a millisecond
        for s in range(symbols):
            rows = np.flatnonzero(sym_code == s)
            tid[rows] = tid[rows][np.lexsort((rng.random(len(rows)), ts[rows]))]
    price = np.round(np.exp(rng.normal(0, 0.001, n).cumsum()) * 10.0 ** rng.integers(-3, 5, symbols)[sym_code], 8)
    # quantities of every magnitude and many digits: the sums' last bits depend on the order of additions
    qty = rng.random(n) * 10.0 ** rng.integers(-8, 7, n) + 1e-9
    buy = rng.random(n) < 0.5
    order = np.arange(n)
    if shape == "shuffled":  # out of order within windows that straddle the 10,000-row read batches
        order = np.argsort(np.arange(n) + rng.integers(0, 3_000, n), kind="stable")
    if shape == "late":  # every 97th trade is an hour old (late once its symbol has moved on)
        ts = ts.copy()
        ts[::97] -= 3_600_000
    names = np.array([f"S{i:03d}USDT" for i in range(symbols)])
    write_plain(path, ts[order], names[sym_code][order], price[order], qty[order], tid[order], buy[order])


def inputs(work: Path, big: int) -> list[tuple[Path, tuple[str, ...]]]:
    """The input files, each with the interval sets to run it with."""
    out: list[tuple[Path, tuple[str, ...]]] = []
    if big:
        path = work / f"sim_{big}.csv"
        if not path.exists():
            write_csv(make_trades(big, 20), path)
        out.append((path, BIG_INTERVAL_SETS))
    path = work / "sim_200000_3.csv"
    if not path.exists():
        write_csv(make_trades(200_000, 3), path)
    out.append((path, INTERVAL_SETS))
    for seed, shape in enumerate(("gaps", "one_symbol", "many_symbols", "equal_ts", "shuffled", "late", "tiny", "mix")):
        path = work / f"odd_{shape}.csv"
        if not path.exists():
            odd_shape(path, shape, seed)
        out.append((path, INTERVAL_SETS))
    out += [(p, INTERVAL_SETS) for p in sorted((ROOT / "data" / "samples").rglob("*")) if p.is_file()]
    return out


def run(tree: Path, src: Path, intervals: str, out: Path) -> tuple[int, str]:
    """Exit status and stderr of one run of the command in ``tree`` (the output's path and log times taken out)."""
    argv = [sys.executable, "-m", "backend", "aggregate", str(src), "--intervals", intervals, "--out", str(out)]
    proc = subprocess.run(argv, cwd=tree, capture_output=True, text=True, check=False)
    return proc.returncode, LOG_TIME.sub("", proc.stderr.replace(str(out), "OUT"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, required=True, help="the other tree (its backend/ is run)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/aggregate_identical"), help="inputs and outputs")
    ap.add_argument("--big", type=int, default=1_000_000, help="simulator trades in the large input (0: none)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    different = 0
    runs = 0
    for src, sets in inputs(args.work, args.big):
        for intervals in sets:
            for suffix in (".csv", ".jsonl"):
                name = f"{src.name}.{intervals.replace(',', '-')}"
                ours, theirs = args.work / f"{name}.ours{suffix}", args.work / f"{name}.ref{suffix}"
                for p in (ours, theirs):
                    p.unlink(missing_ok=True)
                a = run(ROOT, src, intervals, ours)
                b = run(args.reference, src, intervals, theirs)
                same_bytes = (ours.exists() and theirs.exists() and ours.read_bytes() == theirs.read_bytes()) or (
                    not ours.exists() and not theirs.exists()
                )
                same = same_bytes and a == b
                runs += 1
                different += not same
                size = ours.stat().st_size if ours.exists() else 0
                status = "identical" if same else "DIFFERENT"
                print(
                    f"{status:9} {src.relative_to(ROOT) if src.is_relative_to(ROOT) else src}  {intervals:16} "
                    f"{suffix:6} exit {a[0]}  {size:>11,} bytes  sha256 {digest(ours)}  "
                    f"{a[1].strip().splitlines()[-1][:90] if a[1].strip() else ''}",
                    flush=True,
                )
    print(f"{runs} runs, {runs - different} identical, {different} different (reference: {args.reference})")
    return 1 if different else 0


if __name__ == "__main__":
    raise SystemExit(main())
