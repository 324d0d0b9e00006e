"""Opening a trade file: plain, gzip or a one-file zip, and what its name says.

Exchanges ship their dumps compressed (data.binance.vision: zip; ccxt dumps:
often .gz); every reader gets the same uncompressed byte stream whatever the
container, so no reader knows about compression.
"""

from __future__ import annotations

import gzip
import io
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from backend.models import normalize_symbol

SNIFF_BYTES = 1 << 16
_BINANCE_NAME = re.compile(r"^([A-Za-z0-9]{2,20})-(trades|aggTrades)-", re.IGNORECASE)


class TradeFileError(ValueError):
    """A trade file that cannot be read on: one line naming the file, where, and what is wrong."""


@dataclass(frozen=True)
class ReadLimits:
    """How far a compressed file may expand: by ``max_ratio`` × its size and ``max_bytes`` in all.

    Trade dumps expand 5 to 15 times (CSV, JSON); a decompression bomb a thousand
    times or more, which the JSON document readers would hold in memory whole.
    The first ``RATIO_FLOOR`` bytes are always allowed, so a tiny file of
    repetitive rows is not mistaken for one.
    """

    max_ratio: float = 100.0
    max_bytes: int = 1 << 40  # 1 TiB: a year of an exchange's dumps, uncompressed, fits
    RATIO_FLOOR = 64 << 20

    def allowed(self, compressed_size: int) -> int:
        return min(self.max_bytes, max(self.RATIO_FLOOR, int(compressed_size * self.max_ratio)))


DEFAULT_LIMITS = ReadLimits()


class _Bounded(io.RawIOBase):
    """A decompressed stream that raises :class:`TradeFileError` past ``limit`` bytes."""

    def __init__(self, inner: IO[bytes], path: Path, limit: int, limits: ReadLimits) -> None:
        self.inner, self.path, self.limit, self.limits, self.count = inner, path, limit, limits, 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.count

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(buffer))
        self.count += len(data)
        if self.count > self.limit:
            raise TradeFileError(
                f"{self.path}: expands past {self.limit:,} bytes ({self.limits.max_ratio:g}× its size or "
                f"{self.limits.max_bytes:,} bytes): a decompression bomb? Raise CANDLES_READ_MAX_RATIO or "
                "CANDLES_READ_MAX_BYTES if the file is genuine"
            )
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def open_trades(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> IO[bytes]:
    """The file's bytes, transparently un-gzipped or taken from a one-file zip (data.binance.vision).

    Compressed content is bounded by ``limits``; a corrupt container is a :class:`TradeFileError`.
    """
    if not path.is_file():
        raise FileNotFoundError(f"trade file not found: {path}")
    with path.open("rb") as f:
        magic = f.read(4)
    limit = limits.allowed(path.stat().st_size)
    if magic[:2] == b"\x1f\x8b":
        inner: IO[bytes] = gzip.open(path)  # type: ignore[assignment]  # noqa: SIM115 (the caller closes it)
    elif magic == b"PK\x03\x04":
        try:
            archive = zipfile.ZipFile(path)
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if not names:
                raise TradeFileError(f"{path}: the zip archive is empty")
            inner = archive.open(names[0])
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error, NotImplementedError) as exc:
            if isinstance(exc, TradeFileError):
                raise
            raise TradeFileError(f"{path}: not a readable zip archive: {exc}") from None
    else:
        return path.open("rb")
    return io.BufferedReader(_Bounded(inner, path, limit, limits), buffer_size=1 << 16)  # type: ignore[return-value]


def head(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> bytes:
    """The first bytes of the (uncompressed) file, enough to tell its format."""
    with open_trades(path, limits) as f:
        try:
            return f.read(SNIFF_BYTES)
        except (OSError, EOFError, zlib.error) as exc:
            raise TradeFileError(f"{path}: {describe_read_error(exc)} (near the start)") from None


def describe_read_error(exc: BaseException) -> str:
    """What a failed read of a (compressed) trade file means, in words."""
    if isinstance(exc, EOFError):
        return "the compressed data ends early (a truncated download?)"
    if isinstance(exc, gzip.BadGzipFile):
        return f"corrupt gzip data ({exc})"
    if isinstance(exc, zlib.error | zipfile.BadZipFile):
        return f"corrupt compressed data ({exc})"
    if isinstance(exc, RecursionError):
        return "JSON nested deeper than the decoder allows"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def symbol_from_name(path: Path) -> str | None:
    """``BTCUSDT-aggTrades-2024-01-01.csv`` → ``BTCUSDT`` (data.binance.vision naming)."""
    m = _BINANCE_NAME.match(path.name)
    return normalize_symbol(m.group(1)) if m else None
