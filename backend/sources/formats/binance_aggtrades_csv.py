"""data.binance.vision aggTrades dumps.

Columns ``agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker[,is_best_match]``.
An aggregate trade stands for ``last - first + 1`` raw trades, and counts that
many in a candle, as Binance's own klines do. The symbol comes from the file
name or ``--symbol``.
"""

from __future__ import annotations

from backend.sources.formats.csv_blocks import is_number
from backend.sources.formats.csv_reader import CsvLayout, csv_format
from backend.sources.formats.spec import Sniff


def _data_row(sniff: Sniff) -> bool:
    """Numeric-led fields, and the name says aggTrades, or eight fields, or seven ending in two numbers."""
    row = sniff.row
    if not all(is_number(x) for x in row[:5]):
        return False
    return "aggtrades" in sniff.name or len(row) == 8 or (len(row) == 7 and is_number(row[5]))


FORMAT = csv_format(
    "binance_aggtrades_csv",
    "aggTrades `agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker[,…]`; "
    "counts `last-first+1` raw trades",
    CsvLayout(7, 8, ts=5, price=1, qty=2, trade_id=0, first_last=(3, 4), buyer_maker=6),
    header=frozenset({"agg_trade_id", "first_trade_id", "transact_time"}),
    data_row=_data_row,
    needs_symbol=True,
)
