"""``python -m backend aggregate``: a trade file in, exchange-style candles (klines) out."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from backend.aggregate import Aggregator
from backend.config import INTERVALS_MS, parse_intervals
from backend.models import Candle, Rejects

if TYPE_CHECKING:
    from backend.sources.formats import ReadLimits

OUTPUT_FIELDS = tuple(f for f in ("type", *Candle.__struct_fields__) if f != "emitted_at")


def aggregate_file(
    path: Path,
    intervals: tuple[str, ...],
    *,
    fmt: str | None = None,
    symbol: str | None = None,
    limits: ReadLimits | None = None,
) -> tuple[list[Candle], Rejects, Aggregator]:
    """Every candle of the file, closed ones and the one still open at the end, in stream order."""
    from backend.sources.formats import ReadLimits, read_trades

    rejects = Rejects()
    agg = Aggregator(intervals)
    closed: list[Candle] = []
    for batch in read_trades(path, fmt, rejects=rejects, symbol=symbol, limits=limits or ReadLimits()):
        agg.add(batch)
        closed.extend(agg.take_closed())
    closed.extend(agg.take_closed())
    candles = closed + agg.open_candles()
    candles.sort(key=lambda c: (c.symbol, INTERVALS_MS[c.interval], c.open_time))
    return candles, rejects, agg


def write_candles(candles: list[Candle], out: Path) -> None:
    """CSV with a header row, or JSON lines when the name ends in ``.jsonl``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".jsonl":
        enc = msgspec.json.Encoder()
        with out.open("wb") as f:
            for c in candles:
                d = msgspec.to_builtins(c)
                d.pop("emitted_at", None)
                f.write(enc.encode(d) + b"\n")
        return
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(OUTPUT_FIELDS)
        for c in candles:
            w.writerow(["candle", *(_cell(getattr(c, name)) for name in OUTPUT_FIELDS[1:])])


def _cell(v: object) -> object:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else v


def aggregate_command(
    path: Path,
    intervals_text: str,
    out: Path,
    *,
    fmt: str | None = None,
    symbol: str | None = None,
    limits: ReadLimits | None = None,
) -> int:
    try:
        intervals = parse_intervals(intervals_text)
        candles, rejects, agg = aggregate_file(path, intervals, fmt=fmt, symbol=symbol, limits=limits)
    except FileNotFoundError:
        print(f"error: no such file: {path}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    write_candles(candles, out)
    late = sum(agg.late.values())
    read = agg.trades_in + late + rejects.total
    print(
        f"read {read} rows: used {agg.trades_in}, rejected {rejects.total} ({rejects.summary()}), late {late}; "
        f"wrote {len(candles)} candles to {out}",
        file=sys.stderr,
    )
    return 0
