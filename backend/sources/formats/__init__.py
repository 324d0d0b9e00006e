"""Readers for recorded trades (exchange CSV dumps, REST JSON, raw WebSocket captures) and their one registry.

Every reader streams ``TradeBatch`` chunks of validated trades and never raises
for a bad row: each one is counted in a ``Rejects`` by reason, with its line
number (or 1-based record number for JSON arrays), because a replay of real
data must say what it dropped and where. Messages that are not trades (depth,
tickers, klines, sent subscriptions) are counted in a separate ``skipped``
counter, not as rejects.

One module per format declares it (:class:`~backend.sources.formats.spec.Format`);
:data:`REGISTRY` lists them, and detection, the entry points, the ``--format``
help and the README table all read it. A new format is one module plus one
line here.
"""

from __future__ import annotations

import contextlib
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from backend.models import Rejects, TradeBatch, normalize_symbol, now_ms
from backend.sources.formats import (
    binance_aggtrades_csv,
    binance_trades_csv,
    ccxt_json,
    kraken_json,
    plain_csv,
    ws_capture,
)
from backend.sources.formats.emitter import Emitter, TimedBatch
from backend.sources.formats.files import (
    DEFAULT_LIMITS,
    ReadLimits,
    TradeFileError,
    describe_read_error,
    head,
    open_trades,
    symbol_from_name,
)
from backend.sources.formats.spec import Format, Sniff

__all__ = [
    "DEFAULT_CHUNK",
    "FORMATS",
    "REGISTRY",
    "ReadLimits",
    "TimedBatch",
    "TradeFileError",
    "check_file",
    "detect_format",
    "format_help",
    "format_table",
    "read_timed",
    "read_trades",
]

# Detection tries the formats in this order and takes the first that recognises the file.
REGISTRY: tuple[Format, ...] = (
    ws_capture.FORMAT,
    kraken_json.FORMAT,
    ccxt_json.FORMAT,
    plain_csv.FORMAT,
    binance_aggtrades_csv.FORMAT,
    binance_trades_csv.FORMAT,
)
FORMATS: tuple[str, ...] = tuple(f.name for f in REGISTRY)
DEFAULT_CHUNK = 10_000

_BY_NAME = {f.name: f for f in REGISTRY}
_KNOWN_HEADERS = frozenset().union(*(f.header for f in REGISTRY))


def format_help() -> str:
    """One line per format, ``name: description``, for the CLI's ``--format`` help."""
    return "\n".join(f"{f.name}: {f.description.replace('`', '')}" for f in REGISTRY)


def format_table() -> str:
    """The README's Markdown table of formats."""
    rows = [f"| `{f.name}` | {f.description} |" for f in REGISTRY]
    return "\n".join(["| `--format` | what |", "|---|---|", *rows])


def detect_format(path: str | Path, limits: ReadLimits = DEFAULT_LIMITS) -> str:
    """The format name of a trade file, from its first bytes (and its name for Binance dumps)."""
    path = Path(path)
    sniff = Sniff(path, head(path, limits), _KNOWN_HEADERS)
    if not sniff.stripped:
        raise ValueError(f"{path} is empty: cannot detect its format")
    for fmt in REGISTRY:
        if fmt.detect(sniff):
            return fmt.name
    raise ValueError(f"cannot tell the format of {path}; pass one of: {', '.join(FORMATS)}")


def check_file(
    path: str | Path, fmt: str | None = None, symbol: str | None = None, limits: ReadLimits = DEFAULT_LIMITS
) -> tuple[str, str | None]:
    """``(format, default symbol)`` of a trade file, or a one-line error before any reading starts."""
    path = Path(path)
    fmt = fmt or detect_format(path, limits)
    if fmt not in _BY_NAME:
        raise ValueError(f"unknown trade format {fmt!r}; choose from: {', '.join(FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"trade file not found: {path}")
    if symbol is not None and normalize_symbol(symbol) is None:
        raise ValueError(f"bad symbol {symbol!r}: use 2 to 20 letters or digits, like BTCUSDT")
    symbol = symbol or symbol_from_name(path)
    if _BY_NAME[fmt].needs_symbol and symbol is None:
        raise ValueError(f"cannot tell the symbol of {path.name}: name it like BTCUSDT-trades-2024-01-01.csv")
    return fmt, symbol


def read_timed(
    path: str | Path,
    fmt: str | None = None,
    *,
    rejects: Rejects,
    skipped: Rejects | None = None,
    chunk: int = DEFAULT_CHUNK,
    symbol: str | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Iterator[TimedBatch]:
    """Like :func:`read_trades`, with each batch's replay clock (ms per row) for paced replays."""
    fmt, symbol = check_file(path, fmt, symbol, limits)
    stream = open_trades(Path(path), limits)  # raises before the generator starts: a missing file fails at once
    em = Emitter(chunk, rejects, skipped or Rejects(), now_ms())
    return _generate(Path(path), stream, _BY_NAME[fmt], em, symbol)


def _generate(path: Path, stream: IO[bytes], fmt: Format, em: Emitter, symbol: str | None) -> Iterator[TimedBatch]:
    """The reader's batches; a file that breaks mid-way ends them with one :class:`TradeFileError` line."""
    with stream:
        try:
            yield from fmt.read(stream, em, symbol)
        except TradeFileError as exc:  # says where already (past the decompression limits)
            error = exc
        except (
            ValueError,
            OSError,
            EOFError,
            zlib.error,
            zipfile.BadZipFile,
            RecursionError,
            NotImplementedError,
        ) as exc:
            where = ""
            with contextlib.suppress(OSError, ValueError):
                where = f" (near byte {stream.tell():,})"
            error = TradeFileError(f"{path}: {describe_read_error(exc)}{where}")
        else:
            return
    yield from em.drain(final=True)  # the valid rows read before the break are not lost
    raise error


def read_trades(
    path: str | Path,
    fmt: str | None = None,
    *,
    rejects: Rejects,
    skipped: Rejects | None = None,
    chunk: int = DEFAULT_CHUNK,
    symbol: str | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Iterator[TradeBatch]:
    """Validated trades of a file, streamed in batches of at most ``chunk`` rows.

    ``fmt`` is one of :data:`FORMATS` (detected from the content when None);
    ``symbol`` names the symbol of Binance CSV dumps when the file name does not
    (``BTCUSDT-trades-2024-01-01.csv``). Bad rows are counted in ``rejects``
    with their line (record) numbers; non-trade messages in ``skipped``.
    A missing file raises FileNotFoundError, an unknown format ValueError; a file that cannot be
    read on (corrupt or truncated compression, JSON that is not trades, past ``limits``) raises
    :class:`TradeFileError` (a ValueError) with one line naming the file and where.
    """
    timed = read_timed(path, fmt, rejects=rejects, skipped=skipped, chunk=chunk, symbol=symbol, limits=limits)
    return (batch for batch, _ in timed)
