"""A progress bar on stderr for long offline runs: rows, rows/s and time left, only when stderr is a terminal.

The bar is rich's (it comes with Streamlit); it is imported only when there is a
terminal to draw on, so a piped or scripted run pays nothing for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_SAMPLE_BYTES = 1 << 16
_COMPRESSED = (b"\x1f\x8b", b"PK\x03\x04")


def estimated_rows(path: Path) -> int | None:
    """About how many lines a plain-text file has, from its size and its first 64 KB; None for compressed files."""
    try:
        with path.open("rb") as f:
            sample = f.read(_SAMPLE_BYTES)
        size = path.stat().st_size
    except OSError:
        return None
    lines = sample.count(b"\n")
    if sample.startswith(_COMPRESSED) or lines < 10:  # compressed, or one JSON document: rows unknown
        return None
    return int(size * lines / len(sample))


@contextmanager
def row_progress(path: Path, stream: IO[str] | None = None) -> Iterator[Callable[[int], None] | None]:
    """A callback taking the rows read since the last call, drawing the bar; None when ``stream`` is no terminal."""
    stream = stream or sys.stderr
    if not stream.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} rows"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(file=stream), transient=True) as bar:
        task = bar.add_task(path.name, total=estimated_rows(path), rate="")

        def advance(rows: int) -> None:
            speed = bar.tasks[0].speed
            bar.update(task, advance=rows, rate=f"{speed:,.0f} rows/s" if speed else "")

        yield advance
