"""The streams the process follows: one book each, the last seq seen, and the snapshots due.

The listener opens and drops books as sessions come and go, checks each
candle's ``seq`` against the last one, and asks for snapshots; the REST
worker takes the snapshots due and merges them into the books.
"""

from __future__ import annotations

from backend.models import Candle
from services.feed.book import DEFAULT_BOOK_LIMIT, Stream, StreamBook


class Streams:
    """Books, last ``seq`` and snapshots due, per stream.

    Not thread-safe by itself: the feed guards it with its lock.
    """

    def __init__(self, book_limit: int = DEFAULT_BOOK_LIMIT) -> None:
        self.book_limit = book_limit
        self.books: dict[Stream, StreamBook] = {}
        self.seq: dict[Stream, int] = {}
        self.snapshot_due: dict[Stream, int] = {}  # stream → how many recent candles to fetch

    def follow(self, desired: set[Stream], added: set[Stream]) -> None:
        """Drop the books of streams nobody wants any more; open one for each added stream."""
        for s in set(self.books) - desired:
            self.books.pop(s, None)
            self.seq.pop(s, None)
            self.snapshot_due.pop(s, None)
        for s in added:
            self.books.setdefault(s, StreamBook(s, self.book_limit))

    def unsync(self) -> None:
        """Every book may have missed updates (the connection went down or came back)."""
        for b in self.books.values():
            b.synced = False

    def due(self, streams: dict[Stream, int] | set[Stream], limit: int | None) -> None:
        """Queue snapshots of ``limit`` candles (else each stream's own count); the larger request wins."""
        for s in streams:
            if s in self.books:
                n = limit if limit is not None else streams[s]  # type: ignore[index]
                self.snapshot_due[s] = max(n, self.snapshot_due.get(s, 0))

    def take_due(self) -> dict[Stream, int]:
        """The snapshots due, handed over once."""
        due = dict(self.snapshot_due)
        self.snapshot_due.clear()
        return due

    def patch_size(self, book: StreamBook, c: Candle) -> int:
        """How many recent candles a gap resync fetches: what the hole can span, plus a margin."""
        if not book.loaded or book.last is None:
            return self.book_limit
        step = max(1, c.close_time - c.open_time + 1)
        missed = max(0, (c.open_time - book.last.open_time) // step)
        return int(min(self.book_limit, missed + 5))
