"""Trade files in the replay formats → the one CSV file the Flink job reads.

Flink's filesystem connector reads CSV directly; the project's readers already read every replay
format (detection, validation, rejects by reason), so each input file is read with them and written
as CSV of the job's trade columns, rather than teaching Flink every format. A directory's files go
into one CSV in name order (daily dumps in time order): the job's source reads it in one split, in
order, so its watermark never sees a later file before an earlier one. Floats are written with
17 significant digits, which Java parses back to the very same double.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from backend.models import Rejects, TradeBatch
from backend.sources.formats import ReadLimits, detect_format, read_trades

_ROW = "%s,%.17g,%.17g,%d,%d,%s,%d\n"


@dataclass
class Converted:
    """What the conversion read: trades written, rejects by reason, and input files it could not use."""

    trades: int = 0
    files: int = 0
    rejects: Rejects = field(default_factory=Rejects)
    skipped: list[str] = field(default_factory=list)


def input_files(path: Path, limits: ReadLimits) -> tuple[list[Path], list[str]]:
    """The trade files of ``path`` (itself, or the files of a directory, sorted) and those skipped, with why.

    In a directory, a file whose format is not recognised (an exchange's klines next to its trades) is skipped
    and named; a file named on its own must be trades (its error is the reader's).
    """
    if not path.is_dir():
        return [path], []
    files, skipped = [], []
    for p in sorted(q for q in path.iterdir() if q.is_file() and not q.name.startswith(".")):
        try:
            detect_format(p, limits)
        except ValueError:
            skipped.append(f"{p.name}: not trades in a known format")
            continue
        files.append(p)
    if not files:
        raise ValueError(f"no trade file in {path}")
    return files, skipped


def csv_lines(batch: TradeBatch) -> str:
    """One CSV line per trade: symbol, price, qty, ts_ms, trade_id, taker_buy, count."""
    symbols = [batch.symbols[i] for i in batch.sym.tolist()]
    buys = ["true" if b else "false" for b in batch.taker_buy.tolist()]
    cols = zip(
        symbols,
        batch.price.tolist(),
        batch.qty.tolist(),
        batch.ts.tolist(),
        batch.trade_id.tolist(),
        buys,
        batch.count.tolist(),
        strict=True,
    )
    return "".join([_ROW % row for row in cols])


def convert(
    path: Path, out: Path, *, fmt: str | None = None, symbol: str | None = None, limits: ReadLimits | None = None
) -> Converted:
    """Write the trades of ``path`` (a file or a directory) as one CSV file ``out``."""
    limits = limits or ReadLimits()
    files, skipped = input_files(path, limits)
    done = Converted(skipped=skipped)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for src in files:
            for batch in read_trades(src, fmt, rejects=done.rejects, symbol=symbol, limits=limits):
                f.write(csv_lines(batch))
                done.trades += len(batch)
            done.files += 1
    return done
