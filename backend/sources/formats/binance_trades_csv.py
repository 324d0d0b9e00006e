"""data.binance.vision trades dumps: ``id,price,qty,quote_qty,time,is_buyer_maker[,is_best_match]``.

Rows do not name the symbol: it comes from the file name
(``BTCUSDT-trades-2025-01-01.zip``) or ``--symbol``. Times are in ms, or µs in
the spot dumps since 2025.
"""

from __future__ import annotations

from backend.sources.formats.csv_blocks import is_number
from backend.sources.formats.csv_reader import CsvLayout, csv_format
from backend.sources.formats.spec import Sniff


def _data_row(sniff: Sniff) -> bool:
    """Six numeric-led fields, or seven whose sixth is the is_buyer_maker flag."""
    row = sniff.row
    return all(is_number(x) for x in row[:5]) and (len(row) == 6 or (len(row) == 7 and not is_number(row[5])))


FORMAT = csv_format(
    "binance_trades_csv",
    "data.binance.vision trades `id,price,qty,quote_qty,time,is_buyer_maker[,is_best_match]` "
    "(.csv/.zip/.gz, ms or µs times; symbol from the file name or `--symbol`)",
    CsvLayout(6, 7, ts=4, price=1, qty=2, trade_id=0, buyer_maker=5),
    header=frozenset({"quote_qty", "is_buyer_maker"}),
    data_row=_data_row,
    needs_symbol=True,
)
