"""CSV as blocks of whole lines: cutting a file into blocks, parsing them ahead on threads, finding lines in them.

CSV is the format that gets big, so it is read a few MB at a time: a plain
file is memory-mapped and cut into zero-copy views, a compressed stream is read
and cut into bytes; blocks are parsed on a small thread pool while the consumer
works on the previous one. A block the strict parse rejects is cut into pieces
(:func:`parts`) until its bad lines are isolated.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import mmap
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, TypeVar

import numpy as np

BLOCK_BYTES = 1 << 22  # CSV is parsed in blocks of about 4 MB
# A block the strict parse rejects is cut into SPLIT pieces, each tried again; a failing piece of at most
# SLOW_BYTES is parsed line by line. Each pyarrow call costs ~0.3 ms however small its input, about what
# the line parser takes for 10 KB, so the leaves stay that size (measured on 1M rows with 100 bad lines).
SPLIT = 4
SLOW_BYTES = 1 << 15
_PARSE_THREADS = min(4, os.cpu_count() or 1)  # blocks parsed in parallel, each on one thread
_KEEP_BLOCKS = 2 * _PARSE_THREADS + 2  # mapped blocks kept resident behind the newest: well past those in work

Block = bytes | memoryview  # whole lines; a memoryview of a memory-mapped file costs no copy
T = TypeVar("T")
U = TypeVar("U")


def blocks(stream: IO[bytes]) -> Iterator[Block]:
    """Whole lines, a few MB at a time, streaming; a UTF-8 byte-order mark is dropped.

    A plain file is memory-mapped and cut into zero-copy views; a compressed
    stream is read and cut into bytes.
    """
    mapped = None
    if isinstance(stream, io.BufferedReader):  # a plain file (gzip and zip streams report the raw file's fd)
        with contextlib.suppress(OSError, ValueError):  # an empty file cannot be mapped
            mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    if mapped is not None:
        view, size = memoryview(mapped), len(mapped)
        start = 3 if mapped[:3] == b"\xef\xbb\xbf" else 0
        starts: collections.deque[int] = collections.deque()
        released = 0
        while start < size:
            end = min(start + BLOCK_BYTES, size)
            if end < size:
                cut = mapped.rfind(b"\n", start, end)
                cut = mapped.find(b"\n", end) if cut < 0 else cut  # a line longer than a block
                end = size if cut < 0 else cut + 1
            yield view[start:end]
            starts.append(start)
            if len(starts) > _KEEP_BLOCKS:
                released = _release(mapped, released, starts.popleft())
            start = end
        return
    rest = b""
    while data := stream.read(BLOCK_BYTES):
        cut = data.rfind(b"\n") + 1
        if not cut:
            rest += data
            continue
        yield b"".join((rest, memoryview(data)[:cut])).removeprefix(b"\xef\xbb\xbf")
        rest = data[cut:]
    if rest:
        yield rest.removeprefix(b"\xef\xbb\xbf")


def _release(mapped: mmap.mmap, released: int, until: int) -> int:
    """Let the kernel drop the mapped pages before ``until``; returns where released pages now end.

    Pages of a mapped file read once stay counted in the process's memory until unmapped, so reading
    a file larger than memory would look like it needs all of it. Dropping them is always safe: a
    page touched again (a block still being parsed) is read back from the file.
    """
    until -= until % mmap.PAGESIZE
    if until > released and hasattr(mapped, "madvise") and hasattr(mmap, "MADV_DONTNEED"):  # not on Windows
        mapped.madvise(mmap.MADV_DONTNEED, released, until - released)
        return until
    return released


def first_line(block: Block) -> bytes:
    """The block's first line, without its newline."""
    head = bytes(block[:65_536])
    end = head.find(b"\n")
    return head if end < 0 else head[:end]


def ordered_map(fn: Callable[[T], U], items: Iterator[T]) -> Iterator[U]:
    """``map(fn, items)`` on a few threads, a few items ahead of the consumer, in order.

    pyarrow parses without holding the GIL, so blocks are parsed in parallel
    with each other and with the consumer (the aggregator). Closing the
    iterator cancels what has not started.
    """
    pending: collections.deque[Future[U]] = collections.deque()
    with ThreadPoolExecutor(_PARSE_THREADS, thread_name_prefix="trade-file") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > _PARSE_THREADS:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def split(text: str) -> list[str]:
    """The fields of one CSV line (quotes honoured only where there are any).

    A quote beside a lone carriage return is no CSV the csv module reads (``csv.Error``): such a line is split
    at its commas as it is, so its fields fail as numbers and the line is counted, not raised.
    """
    if '"' not in text:
        return text.split(",")
    try:
        return next(csv.reader([text]))
    except csv.Error:
        return text.split(",")


def is_number(text: str) -> bool:
    """A field that reads as a number (a header row's first field does not)."""
    try:
        float(text.strip().strip('"'))
    except ValueError:
        return False
    return True


def parts(block: bytes, n: int) -> list[bytes]:
    """``block`` cut into about ``n`` pieces of whole lines."""
    cuts, start = [], 0
    for i in range(1, n):
        end = block.find(b"\n", max(start, len(block) * i // n)) + 1
        if end <= start:
            break
        cuts.append(block[start:end])
        start = end
    return [*cuts, block[start:]] if start < len(block) else cuts


def lines_in(block: bytes) -> int:
    """The number of lines of a block, a last one without newline included."""
    return block.count(b"\n") + (not block.endswith(b"\n"))


def lines_at(block: Block, rows: np.ndarray) -> Iterator[tuple[int, str]]:
    """``(row, text)`` of the given 0-based lines of a block."""
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n"))
    starts = np.concatenate([[0], ends + 1])
    ends = np.append(ends, len(block))
    for row in rows.tolist():
        yield row, bytes(block[starts[row] : ends[row]]).decode("utf-8", "replace")
