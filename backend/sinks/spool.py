"""The spool: closed candles not yet in SQL, in a local append-only file, so that no exit loses them.

Why a local file rather than a Redis stream: the spool must outlive what it
guards against, and the embedded Valkey keeps nothing on disk and goes down
with the stack; a file under the data directory survives a SIGKILL of every
process (what the kernel has taken from ``write`` is kept), costs one
``write`` per flush (``benchmarks/spool.py`` measures both), and needs no
server. It is not fsynced: a power cut may lose the last seconds.

One JSON candle (the wire encoding) per line, appended before the SQL sink
queues it; emptied whenever every candle in it is written; read back on the
next start, where a line cut short by a crash is counted and skipped. No
library keeps a crash-safe append-only queue of records with this little
(``persist-queue`` and ``diskcache`` use SQLite, which would take a lock and a
transaction per flush on the hot path), so it is written here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import msgspec

from backend.models import Candle, decode_message, encode_message

log = logging.getLogger(__name__)

_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


def spool_path(data_dir: Path, database_url: str, redis_prefix: str) -> Path:
    """One spool per (database, key prefix): two feeds into one database never empty each other's."""
    digest = hashlib.sha256(f"{database_url}\n{redis_prefix}".encode()).hexdigest()[:12]
    return data_dir / "spool" / f"candles-{digest}.jsonl"


class Spool:
    """An append-only file of candles; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | _BINARY, 0o644)
        self._lock = threading.Lock()
        self.bad_lines = 0

    def read(self) -> list[Candle]:
        """The candles in the file (from a previous run); lines that do not decode are counted and skipped."""
        with open(self.path, "rb") as f:
            data = f.read()
        out: list[Candle] = []
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                candle = decode_message(line)
            except (msgspec.DecodeError, ValueError):
                candle = None
            if isinstance(candle, Candle):
                out.append(candle)
            else:
                self.bad_lines += 1
        if self.bad_lines:
            log.warning("spool %s: %d unreadable lines skipped (cut short by a crash)", self.path, self.bad_lines)
        return out

    def append(self, candles: Sequence[Candle]) -> None:
        """Append ``candles`` in one ``write``; raises ``OSError`` when the disk refuses."""
        if not candles:
            return
        data = b"".join([encode_message(c) + b"\n" for c in candles])
        with self._lock:
            if self._fd is None:
                raise OSError(f"spool {self.path} is closed")
            view = memoryview(data)
            while view:  # a regular file takes it all at once; a short write only on a full disk
                view = view[os.write(self._fd, view) :]

    def clear(self) -> None:
        """Empty the file: everything in it is written."""
        with self._lock:
            if self._fd is not None:
                os.ftruncate(self._fd, 0)

    def close(self, *, remove: bool) -> None:
        """Close the file; ``remove`` deletes it (nothing pending)."""
        with self._lock:
            if self._fd is None:
                return
            os.close(self._fd)
            self._fd = None
            if remove:
                self.path.unlink(missing_ok=True)
