"""The simplest trade CSV: ``ts_ms,symbol,price,qty[,side,trade_id]``, header row optional.

A missing side counts as a sell (unknown), a missing trade id becomes the line
number, so file order is kept.
"""

from __future__ import annotations

from backend.sources.formats.csv_blocks import is_number
from backend.sources.formats.csv_reader import CsvLayout, csv_format
from backend.sources.formats.spec import Sniff


def _data_row(sniff: Sniff) -> bool:
    """A number, then a symbol."""
    row = sniff.row
    return len(row) >= 2 and is_number(row[0]) and not is_number(row[1])


FORMAT = csv_format(
    "plain_csv",
    "`ts_ms,symbol,price,qty[,side,trade_id]` (header optional, side buy/sell)",
    CsvLayout(4, 6, ts=0, price=2, qty=3, trade_id=5, side=4, symbol=1),
    header=frozenset({"symbol"}),
    data_row=_data_row,
)
