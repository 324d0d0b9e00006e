"""``python -m backend aggregate``: a trade file in, exchange-style candles (klines) out."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from backend.aggregate import Aggregator
from backend.candle_files import CSV_HEADER, CandleFile, csv_rows, jsonl_rows
from backend.intervals import INTERVALS_MS, parse_intervals
from backend.models import Candle, Rejects
from backend.progress import row_progress

if TYPE_CHECKING:
    from backend.sources.formats import ReadLimits


def candle_batches(
    path: Path,
    agg: Aggregator,
    *,
    fmt: str | None = None,
    symbol: str | None = None,
    limits: ReadLimits | None = None,
    rejects: Rejects,
    progress: Callable[[int], None] | None = None,
) -> Iterator[list[Candle]]:
    """The file's candles in event order, a batch at a time: closed ones as they close, then those still open.

    Within one (symbol, interval) they come in ``open_time`` order. ``progress`` gets the trades read per batch.
    """
    from backend.sources.formats import ReadLimits, read_trades

    batches = read_trades(path, fmt, rejects=rejects, symbol=symbol, limits=limits or ReadLimits())
    for batch in batches:
        agg.add(batch)
        yield from agg.take_closed_chunks()
        if progress is not None:
            progress(len(batch))
    yield from agg.take_closed_chunks()
    yield agg.open_candles()


def aggregate_file(
    path: Path,
    intervals: tuple[str, ...],
    *,
    fmt: str | None = None,
    symbol: str | None = None,
    limits: ReadLimits | None = None,
) -> tuple[list[Candle], Rejects, Aggregator]:
    """Every candle of the file in memory, sorted as the command writes them (for tests and small files)."""
    rejects = Rejects()
    agg = Aggregator(intervals)
    candles: list[Candle] = []
    for part in candle_batches(path, agg, fmt=fmt, symbol=symbol, limits=limits, rejects=rejects):
        candles.extend(part)
    candles.sort(key=lambda c: (c.symbol, INTERVALS_MS[c.interval], c.open_time))
    return candles, rejects, agg


def write_candles(candles: list[Candle], out: Path) -> None:
    """CSV with a header row, or JSON lines when the name ends in ``.jsonl``; in the order given."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        if out.suffix == ".jsonl":
            f.write(jsonl_rows(candles))
        else:
            f.write(CSV_HEADER)
            f.write(csv_rows(candles))


def aggregate_command(
    path: Path,
    intervals_text: str,
    out: Path,
    *,
    fmt: str | None = None,
    symbol: str | None = None,
    limits: ReadLimits | None = None,
) -> int:
    """Aggregate ``path`` into ``out`` streaming, in bounded memory; the exit status (2: a one-line error)."""
    rejects = Rejects()
    sink = CandleFile(out)
    try:
        intervals = parse_intervals(intervals_text)
        out.parent.mkdir(parents=True, exist_ok=True)
        agg = Aggregator(intervals)
        with row_progress(path) as progress:
            batches = candle_batches(
                path, agg, fmt=fmt, symbol=symbol, limits=limits, rejects=rejects, progress=progress
            )
            for part in batches:
                sink.add(part)
        sink.finish()
    except FileNotFoundError:
        print(f"error: no such file: {path}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    finally:
        sink.close()
    late = sum(agg.late.values())
    read = agg.trades_in + late + rejects.total
    print(
        f"read {read} rows: used {agg.trades_in}, rejected {rejects.total} ({rejects.summary()}), late {late}; "
        f"wrote {sink.written} candles to {out}",
        file=sys.stderr,
    )
    return 0
