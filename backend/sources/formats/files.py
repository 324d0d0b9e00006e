"""Opening a trade file: plain, gzip or a one-file zip, and what its name says.

Exchanges ship their dumps compressed (data.binance.vision: zip; ccxt dumps:
often .gz); every reader gets the same uncompressed byte stream whatever the
container, so no reader knows about compression.
"""

from __future__ import annotations

import gzip
import re
import zipfile
from pathlib import Path
from typing import IO

from backend.models import normalize_symbol

SNIFF_BYTES = 1 << 16
_BINANCE_NAME = re.compile(r"^([A-Za-z0-9]{2,20})-(trades|aggTrades)-", re.IGNORECASE)


def open_trades(path: Path) -> IO[bytes]:
    """The file's bytes, transparently un-gzipped or taken from a one-file zip (data.binance.vision)."""
    if not path.is_file():
        raise FileNotFoundError(f"trade file not found: {path}")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path)  # type: ignore[return-value]
    if magic == b"PK\x03\x04":
        archive = zipfile.ZipFile(path)
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if not names:
            raise ValueError(f"{path}: the zip archive is empty")
        return archive.open(names[0])
    return path.open("rb")


def head(path: Path) -> bytes:
    """The first bytes of the (uncompressed) file, enough to tell its format."""
    with open_trades(path) as f:
        return f.read(SNIFF_BYTES)


def symbol_from_name(path: Path) -> str | None:
    """``BTCUSDT-aggTrades-2024-01-01.csv`` → ``BTCUSDT`` (data.binance.vision naming)."""
    m = _BINANCE_NAME.match(path.name)
    return normalize_symbol(m.group(1)) if m else None
